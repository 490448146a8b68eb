package config

func (v *validator) approval() {}
