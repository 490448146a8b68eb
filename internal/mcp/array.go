package mcp

import "github.com/go-json-experiment/json/jsontext"

// EachElement calls fn for every element of the JSON array arr in order.
// Like the object helpers it scans bytes of already-valid JSON.
func EachElement(arr jsontext.Value, fn func(v jsontext.Value) error) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errMalformed
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for i < len(arr) {
		end := skipValue(arr, i)
		if end < 0 {
			return errMalformed
		}
		if err := fn(arr[i:end]); err != nil {
			return err
		}
		i = skipWS(arr, end)
		if i >= len(arr) {
			return errMalformed
		}
		switch arr[i] {
		case ',':
			i = skipWS(arr, i+1)
		case ']':
			return nil
		default:
			return errMalformed
		}
	}
	return errMalformed
}

// AppendArray appends the JSON array of the given raw elements to dst.
func AppendArray(dst []byte, elems []jsontext.Value) []byte {
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return append(dst, ']')
}
