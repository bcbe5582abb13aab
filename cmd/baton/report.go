package main

import (
	"encoding/json"
	"io"

	"github.com/spf13/cobra"
)

// progressTo is where a harness (bench, chaos, demo) writes its progress: stdout,
// or stderr when the report goes to stdout as JSON.
func progressTo(cmd *cobra.Command, jsonOut bool) io.Writer {
	if jsonOut {
		return cmd.ErrOrStderr()
	}
	return cmd.OutOrStdout()
}

// writeReport writes a harness's report to stdout, as indented JSON or for
// people, and turns a failed verdict into exit status 1.
func writeReport(cmd *cobra.Command, jsonOut bool, rep interface{ Print(io.Writer) }, ok bool) error {
	if jsonOut {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.Print(cmd.OutOrStdout())
	}
	if !ok {
		return exitError{code: 1}
	}
	return nil
}
