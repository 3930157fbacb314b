// Package pgtest starts a private PostgreSQL cluster for one test package:
// initdb and postgres from the Debian package (/usr/lib/postgresql/*/bin),
// run as the postgres user when the tests run as root (initdb refuses
// root), in a temporary directory, listening on a unix socket only (no TCP,
// so parallel test packages never collide). Each test takes a fresh
// database from it.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// ErrUnavailable says PostgreSQL's binaries are not installed.
var ErrUnavailable = errors.New("PostgreSQL is not installed (apt-get install postgresql; binaries are looked up in /usr/lib/postgresql/*/bin)")

// Cluster is a running private server.
type Cluster struct {
	dir  string
	cmd  *exec.Cmd
	done chan error
	n    atomic.Int64
}

// binDir finds the newest /usr/lib/postgresql/N/bin with initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrUnavailable
}

// Start initialises and starts a cluster. Stop it when the package's tests
// are done.
func Start() (*Cluster, error) { return StartWith(Options{}) }

// Options change the private cluster.
type Options struct {
	// Durable keeps PostgreSQL's defaults (fsync, synchronous commit, full
	// page writes) for load tests that stand for production; tests run
	// without them.
	Durable bool
	// Settings are more "-c name=value" server settings.
	Settings []string
}

// StartWith is Start with options.
func StartWith(o Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "netward-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, done: make(chan error, 1)}
	data := filepath.Join(dir, "data")
	asUser := func(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user (from the postgresql package): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chmod(dir, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		asUser = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	out, err := asUser(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// No TCP; throwaway durability settings (a test cluster is never reused).
	args := []string{"-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=200"}
	if !o.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, s := range o.Settings {
		args = append(args, "-c", s)
	}
	c.cmd = asUser(filepath.Join(bin, "postgres"), args...)
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err == nil {
		c.cmd.Stdout, c.cmd.Stderr = logf, logf
		_ = os.Chmod(logf.Name(), 0o644)
	}
	setProcAttr(c.cmd)
	if err := c.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("postgres: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		db, err := sql.Open("pgx", c.DSN("postgres"))
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err == nil {
			return c, nil
		}
		select {
		case werr := <-c.done:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %v\n%s", werr, log)
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("postgres did not accept connections in 30 s: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// PID is the process id at the root of the server's process tree (the
// postmaster, or the runuser that started it as the postgres user): its
// backends are below it.
func (c *Cluster) PID() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// HasLibrary reports whether the server's package has the shared library
// name (a contrib module, e.g. "pg_stat_statements"), which
// shared_preload_libraries may then name (the server does not start with
// one it cannot find).
func HasLibrary(name string) bool {
	bin, err := binDir()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(filepath.Dir(bin), "lib", name+".so"))
	return err == nil
}

// DSN is the connection string for database name.
func (c *Cluster) DSN(name string) string {
	return fmt.Sprintf("host=%s user=postgres dbname=%s sslmode=disable", c.dir, name)
}

// NewDatabase creates an empty database and returns its DSN.
func (c *Cluster) NewDatabase(prefix string) (string, error) {
	name := fmt.Sprintf("%s_%d", prefix, c.n.Add(1))
	db, err := sql.Open("pgx", c.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

// Stop shuts the server down (fast shutdown) and removes its files.
func (c *Cluster) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		interrupt(c.cmd)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			kill(c.cmd)
			<-c.done
		}
	}
	os.RemoveAll(c.dir)
}

// Database starts a private cluster with o for one test, stopped when the
// test ends, and returns the DSN of a fresh database named after prefix on
// it. Where PostgreSQL cannot start the test is skipped, or failed when
// Required.
func Database(t testing.TB, prefix string, o Options) string {
	t.Helper()
	c, err := StartWith(o)
	if err != nil {
		if Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(c.Stop)
	dsn, err := c.NewDatabase(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Required reports whether a missing PostgreSQL must fail the run
// (NETWARD_E2E=require, as CI sets it) rather than skip.
func Required() bool { return os.Getenv("NETWARD_E2E") == "require" }
