package main

import (
	"fmt"
	"path/filepath"

	"github.com/verbatimhq/verbatim/daemon"
	"github.com/verbatimhq/verbatim/daemon/api"
)

type tokenCmd struct {
	Show   tokenShowCmd   `cmd:"" default:"withargs" help:"Print the API token (made on the daemon's first start, or now): its last word."`
	Rotate tokenRotateCmd `cmd:"" help:"Replace the API token with a new one; a running daemon takes it at once."`
}

type stateDirFlag struct {
	StateDir string `name:"state-dir" type:"path" placeholder:"DIR" help:"The daemon's state folder (default: ${state_dir})."`
}

// dir is the state folder: the flag's, else the platform's.
func (f stateDirFlag) dir() (string, error) {
	if f.StateDir != "" {
		return f.StateDir, nil
	}
	return daemon.DefaultStateDir()
}

type tokenShowCmd struct{ stateDirFlag }

func (c *tokenShowCmd) Run() error {
	dir, err := c.dir()
	if err != nil {
		return err
	}
	tok, err := api.LoadToken(dir)
	if err != nil {
		return err
	}
	fmt.Printf("API token (%s): %s\n", filepath.Join(dir, api.TokenFile), tok)
	return nil
}

type tokenRotateCmd struct{ stateDirFlag }

func (c *tokenRotateCmd) Run() error {
	dir, err := c.dir()
	if err != nil {
		return err
	}
	tok, err := api.RotateToken(dir)
	if err != nil {
		return err
	}
	fmt.Printf("new API token (%s; the old one no longer works): %s\n", filepath.Join(dir, api.TokenFile), tok)
	return nil
}
