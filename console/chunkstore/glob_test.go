package chunkstore

import (
	"io/fs"
	"path/filepath"
)

// filepathGlob lists the regular files under dir.
func filepathGlob(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	return out, err
}
