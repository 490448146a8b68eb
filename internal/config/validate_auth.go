package config

func (v *validator) tls() {}

func (v *validator) auth() {}
