package config

func (v *validator) rateLimits() {}

// methods checks the method filters of servers and profiles.
func (v *validator) methods() {}
