package config

func (v *validator) policy() {}
