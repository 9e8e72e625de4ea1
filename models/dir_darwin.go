package models

import "path/filepath"

func defaultDir() (string, error) {
	h, err := home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, "Library", "Application Support", "Verbatim", "models"), nil
}
