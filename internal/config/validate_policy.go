package config

func (v *validator) policy() {}

func (v *validator) rateLimits() {}

func (v *validator) approval() {}
