package mcp

import "github.com/go-json-experiment/json/jsontext"

// RecoverID returns the "id" of a message Sluice cannot accept (cut off at
// a size limit, or invalid further on), when it can be found among the
// top-level members at the start of raw: a string or a number that lies
// wholly within raw. It lets the caller of a request fail at once instead
// of waiting for an answer that will never be delivered.
func RecoverID(raw []byte) jsontext.Value {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil
	}
	i++
	for {
		i = skipWS(raw, i)
		if i >= len(raw) || raw[i] != '"' {
			return nil
		}
		end := stringEnd(raw, i)
		if end < 0 {
			return nil
		}
		name := raw[i:end]
		i = skipWS(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil
		}
		i = skipWS(raw, i+1)
		start := i
		vend := skipValue(raw, i)
		if vend < 0 || vend >= len(raw) {
			return nil // runs to the end of what is there: may be cut off
		}
		if string(name) == `"id"` {
			v := jsontext.Value(raw[start:vend])
			if (v.Kind() == '"' || v.Kind() == '0') && v.IsValid() {
				return append(jsontext.Value(nil), v...)
			}
			return nil
		}
		i = skipWS(raw, vend)
		if i >= len(raw) || raw[i] != ',' {
			return nil
		}
		i++
	}
}
