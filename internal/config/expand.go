package config

import (
	"fmt"
	"strings"
)

// expandRefs replaces each ${NAME} in s with the value lookup gives for
// NAME; "$${" stands for a literal "${". The returned error names the
// variable, never a value.
func expandRefs(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf(`unterminated "${" (write "$${" for a literal "${")`)
			}
			name := s[i+2 : i+2+end]
			if !validVarName(name) {
				return "", fmt.Errorf("invalid environment variable name %q in ${...}", truncate(name, 64))
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			b.WriteString(v)
			i += 2 + end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// escapeRefs is the inverse of [expandRefs] with no variables: it writes
// each "${" as "$${".
func escapeRefs(s string) string {
	return strings.ReplaceAll(s, "${", "$${")
}

// validVarName reports whether name is a portable environment variable name:
// a letter or underscore, then letters, digits and underscores.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expand resolves the ${VAR} references in the values of c that may hold
// them (command, env, dir, url and headers of each server, data_dir, and
// the audit keys and sink paths), remembering the
// original text of each changed value for [Config.Redacted]. It returns one
// problem per value that could not be expanded; such a value is left as it was.
func (c *Config) expand(lookup func(string) (string, bool)) []*Problem {
	var problems []*Problem
	one := func(path string, v *string) {
		out, err := expandRefs(*v, lookup)
		if err != nil {
			problems = append(problems, c.problem(path, "%s", err.Error()))
			return
		}
		if out != *v {
			if c.templates == nil {
				c.templates = make(map[string]string)
			}
			c.templates[path] = *v
			*v = out
		}
	}
	for _, name := range c.ServerNames() {
		s := c.Servers[name]
		if s == nil {
			continue
		}
		p := childPath("servers", name)
		for i := range s.Command {
			one(indexPath(childPath(p, "command"), i), &s.Command[i])
		}
		for _, k := range sortedKeys(s.Env) {
			v := s.Env[k]
			one(childPath(childPath(p, "env"), k), &v)
			s.Env[k] = v
		}
		one(childPath(p, "dir"), &s.Dir)
		one(childPath(p, "url"), &s.URL)
		for _, k := range sortedKeys(s.Headers) {
			v := s.Headers[k]
			one(childPath(childPath(p, "headers"), k), &v)
			s.Headers[k] = v
		}
	}
	one("data_dir", &c.DataDir)
	if a := c.Audit; a != nil {
		one("audit.hmac_key", &a.HMACKey)
		one("audit.signing_key", &a.SigningKey)
		for i, s := range a.Sinks {
			if s != nil {
				one(childPath(indexPath("audit.sinks", i), "path"), &s.Path)
				one(childPath(indexPath("audit.sinks", i), "dsn"), &s.DSN)
			}
		}
	}
	return problems
}
