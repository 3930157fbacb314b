package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/netward/netward/console/auth"
	"github.com/netward/netward/console/catalog"
	"github.com/netward/netward/console/server"
	"github.com/netward/netward/console/store"
)

const adminUsage = `usage: netward-console admin add NAME [--role admin|viewer] [--password-stdin] [--config FILE]
       netward-console admin passwd NAME [--password-stdin] [--config FILE]
       netward-console admin list [--json] [--config FILE]
       netward-console admin remove NAME [--config FILE]`

// adminMain manages console accounts directly in the store (the console
// may be running: both stores take concurrent writers).
func adminMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, adminUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("admin "+verb, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "console config file (default: the embedded default)")
	role := fs.String("role", store.RoleViewer, "role of a new account: admin or viewer")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input instead of generating one")
	asJSON := fs.Bool("json", false, "print JSON")
	// NAME comes before or after the flags.
	rest := args[1:]
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if code, ok := parseFlags(fs, rest, adminUsage, stdout, stderr); !ok {
		return code
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() != 0 {
		fmt.Fprintln(stderr, adminUsage)
		return 2
	}
	switch verb {
	case "add", "passwd", "remove", "list":
	default:
		// Before the store is opened: an unknown verb must not create
		// ./netward-console-data as a side effect.
		fmt.Fprintf(stderr, "netward-console admin: unknown verb %q\n%s\n", verb, adminUsage)
		return 2
	}
	needName := verb != "list"
	if (name == "") == needName {
		fmt.Fprintln(stderr, adminUsage)
		return 2
	}
	st, err := openStore(ctx, *cfgPath, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "netward-console: %v\n", err)
		return 1
	}
	defer st.Close()
	au := auth.New(auth.Config{Store: st})
	password := func() (string, bool, error) {
		if !*fromStdin {
			return auth.RandomPassword(), true, nil
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", false, err
		}
		return strings.TrimRight(line, "\r\n"), false, nil
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "netward-console admin %s: %v\n", verb, err)
		return 1
	}
	switch verb {
	case "add":
		pw, generated, err := password()
		if err != nil {
			return fail(err)
		}
		if _, err := au.AddAccount(ctx, name, *role, pw); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "account %q added with role %s\n", name, *role)
		if generated {
			fmt.Fprintf(stdout, "password (shown once): %s\n", pw)
		}
	case "passwd":
		pw, generated, err := password()
		if err != nil {
			return fail(err)
		}
		if err := au.SetPassword(ctx, name, pw, ""); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "password of %q changed; its sessions were signed out\n", name)
		if generated {
			fmt.Fprintf(stdout, "new password (shown once): %s\n", pw)
		}
	case "remove":
		if err := st.DeleteAccount(ctx, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "account %q removed\n", name)
	case "list":
		list, err := st.Accounts(ctx)
		if err != nil {
			return fail(err)
		}
		if *asJSON {
			if list == nil {
				list = []store.Account{}
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(list)
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tPASSWORD CHANGED")
		for _, a := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Role, a.CreatedAt.Format("2006-01-02 15:04"), a.PasswordChangedAt.Format("2006-01-02 15:04"))
		}
		tw.Flush()
	default:
		fmt.Fprintln(stderr, adminUsage)
		return 2
	}
	return 0
}

// configMain: netward-console config default | check [--config FILE].
func configMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: netward-console config default | config check --config FILE")
		return 2
	}
	switch args[0] {
	case "default":
		_, _ = stdout.Write(server.DefaultConfigJSON())
		return 0
	case "check":
		fs := flag.NewFlagSet("config check", flag.ContinueOnError)
		path := fs.String("config", "", "config file to check")
		if code, ok := parseFlags(fs, args[1:], "usage: netward-console config check --config FILE", stdout, stderr); !ok {
			return code
		}
		if *path == "" {
			fmt.Fprintln(stderr, "usage: netward-console config check --config FILE")
			return 2
		}
		if _, err := server.LoadConfig(*path); err != nil {
			fmt.Fprintf(stderr, "netward-console: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return 0
	}
	fmt.Fprintln(stderr, "usage: netward-console config default | config check --config FILE")
	return 2
}

func licensesMain(stdout io.Writer) int {
	fmt.Fprint(stdout, "netward-console ships the app catalog of v2fly/domain-list-community under this licence:\n\n"+catalog.LicenseNotice)
	return 0
}
