package main

import (
	"encoding/json"
	"os"
	"time"

	"github.com/verbatimhq/verbatim/daemon"
)

type statusCmd struct {
	StateDir string `name:"state-dir" type:"path" placeholder:"DIR" help:"The daemon's state folder (default: ${state_dir})."`
	Failures int    `default:"5" help:"How many of the last failures to show."`
	JSON     bool   `name:"json" help:"Print the status as JSON."`
}

func (c *statusCmd) Run(e *env) error {
	dir := c.StateDir
	if dir == "" {
		var err error
		if dir, err = daemon.DefaultStateDir(); err != nil {
			return err
		}
	}
	s, err := daemon.ReadStatus(e.ctx, dir, c.Failures)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	s.Write(os.Stdout, time.Now())
	return nil
}
