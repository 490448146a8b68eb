// Command testenv installs the peers Sluice's tests run against, as internal/testenv does
// for go test, and prints where they are, for the shell scripts in scripts/.
//
// Usage:
//
//	go run ./scripts/testenv COMMAND
//
// Commands:
//
//	node               path of a node 22+ binary, installed into the cache if needed
//	npm-packages       node_modules directory of test/npm, installed by npm ci if needed
//	everything-server  path of the Go SDK's conformance server, installed if needed
//	conformance        argv of the official conformance suite's CLI, one word a line
//	freeport           a free TCP port on 127.0.0.1
//	env                all of node, npm-packages and everything-server, as shell assignments
//	                   (NODE=..., NODE_MODULES=..., EVERYTHING_SERVER=..., CONFORMANCE=...)
//
// The cache directory is <module root>/.cache/testenv, or $SLUICE_TESTENV_DIR.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sluicehq/sluice/internal/testenv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: testenv node|npm-packages|everything-server|conformance|freeport|env")

func run(args []string) error {
	if len(args) != 1 {
		return errUsage
	}
	switch args[0] {
	case "node":
		return printPath(testenv.InstallNode())
	case "npm-packages":
		return printPath(testenv.InstallNPMPackages())
	case "everything-server":
		return printPath(testenv.InstallEverythingServer())
	case "conformance":
		argv, err := testenv.PackageCommand(testenv.ConformancePackage)
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(argv, "\n"))
		return nil
	case "freeport":
		port, err := testenv.PickPort()
		if err != nil {
			return err
		}
		fmt.Println(port)
		return nil
	case "env":
		return printEnv()
	default:
		return errUsage
	}
}

func printPath(p string, err error) error {
	if err != nil {
		return err
	}
	fmt.Println(p)
	return nil
}

// printEnv installs everything and prints shell assignments, quoted for eval.
func printEnv() error {
	node, err := testenv.InstallNode()
	if err != nil {
		return err
	}
	modules, err := testenv.InstallNPMPackages()
	if err != nil {
		return err
	}
	everything, err := testenv.InstallEverythingServer()
	if err != nil {
		return err
	}
	conf, err := testenv.PackageCommand(testenv.ConformancePackage)
	if err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"NODE", node},
		{"NODE_MODULES", modules},
		{"EVERYTHING_SERVER", everything},
		{"CONFORMANCE", conf[len(conf)-1]},
	} {
		fmt.Printf("%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes everything is literal
// except the single quote itself.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
