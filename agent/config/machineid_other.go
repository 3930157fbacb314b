//go:build !linux && !windows

package config

import "errors"

func machineID() ([]byte, error) { return nil, errors.New("no machine id on this system") }
