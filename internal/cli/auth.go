package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/authn"
)

func newAuth() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Helpers for authentication configuration",
	}
	cmd.AddCommand(newHashKey())
	return cmd
}

// maxKeyLen bounds a key read from stdin.
const maxKeyLen = 16 << 10

func newHashKey() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-key",
		Short: "Print the hash of an API key read from stdin, for auth.api_keys[].hash",
		Long: `Read an API key from stdin (one line; a final newline is ignored) and
print the value to put in auth.api_keys[].hash. The key is read from stdin
rather than the command line so that it stays out of shell history and
process listings. Sluice stores and compares only the hash.

  openssl rand -base64 32 | tee key.txt | sluice auth hash-key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), maxKeyLen+2))
			line, err := r.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading the key: %w", err)
			}
			key := strings.TrimRight(line, "\r\n")
			switch {
			case key == "":
				return errors.New("no key on stdin")
			case len(key) > maxKeyLen:
				return fmt.Errorf("the key is longer than %d bytes", maxKeyLen)
			case strings.TrimSpace(key) != key:
				return errors.New("the key has leading or trailing spaces; clients would not send them")
			case len(key) < 16:
				return errors.New("the key is shorter than 16 characters; use a long random key (openssl rand -base64 32)")
			}
			if rest, _ := r.ReadString('\n'); strings.TrimSpace(rest) != "" {
				return errors.New("stdin has more than one line; give one key")
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), authn.HashKey(key))
			return err
		},
	}
}
