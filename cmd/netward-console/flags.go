package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// parseFlags parses args for a verb whose usage line is usage: --help
// prints the usage and the flags on stdout and exits 0; a bad flag prints
// the error and the usage line on stderr and exits 2. ok is false when the
// verb is done and must return code.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "%s\n\nFlags:\n", usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0, false
	case err != nil:
		fmt.Fprintf(stderr, "netward-console %s: %v\n%s\n", fs.Name(), err, usage)
		return 2, false
	}
	return 0, true
}

// tokenFlags applies bearerToken for verb and reports its error: the
// message, and the usage line for a usage error. ok is false when the verb
// must return code.
func tokenFlags(verb, usage, token, tokenFile string, noAuth bool, stderr io.Writer) (tok string, code int, ok bool) {
	tok, err := bearerToken(token, tokenFile, noAuth)
	if err == nil {
		return tok, 0, true
	}
	fmt.Fprintf(stderr, "netward-console %s: %v\n", verb, err)
	if errors.As(err, new(usageError)) {
		fmt.Fprintln(stderr, usage)
		return "", 2, false
	}
	return "", 1, false
}

// bearerToken is the shared-token rule of the standalone servers
// (serve-feed, collect): a token from --token or --token-file, or --no-auth
// said out loud; anything else is a usage error, so neither server is open
// to every client by accident.
func bearerToken(token, tokenFile string, noAuth bool) (string, error) {
	n := 0
	for _, set := range []bool{token != "", tokenFile != "", noAuth} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return "", usageError{fmt.Errorf("give --token-file F (or --token T) with the devices' bearer token, or --no-auth for a test setup")}
	case n > 1:
		return "", usageError{fmt.Errorf("--token, --token-file and --no-auth exclude each other")}
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", fmt.Errorf("read the token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("%s is empty; put the devices' bearer token in it", tokenFile)
		}
		return tok, nil
	}
	return token, nil
}

// usageError is a bearerToken error that is the caller's usage (exit 2).
type usageError struct{ error }
