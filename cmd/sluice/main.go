// Command sluice is a security gateway for the Model Context Protocol.
package main

import (
	"context"
	"os"

	"github.com/sluicehq/sluice/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
