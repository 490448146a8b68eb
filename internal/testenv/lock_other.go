//go:build !unix

package testenv

import "errors"

func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("testenv needs a unix system (flock)")
}
