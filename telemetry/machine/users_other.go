//go:build !linux && !windows

package machine

import "errors"

func users() ([]string, error) {
	return nil, errors.New("signed-in users are read on Linux and Windows only")
}
