package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/dlp"
)

func newDLP() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlp",
		Short: "Test the detection of secrets and personal data",
	}
	cmd.AddCommand(newDLPScan())
	return cmd
}

// maxScanInput bounds what `dlp scan` reads.
const maxScanInput = 256 << 20

func newDLPScan() *cobra.Command {
	var cfgPath, format, minConf string
	cmd := &cobra.Command{
		Use:   "scan [FILE|-]",
		Short: "Scan text with the configured detectors and print each finding's type and offsets",
		Long: `Scan a file (or standard input) with the built-in detectors and those of
the configuration's dlp section, and print each finding: its type, class,
confidence, and its byte offsets start and end in the input (never the value
itself), so that detectors can be tested and tuned. A value found inside a
base64, hex or URL-encoded segment spans the whole segment, and its encoding
is shown. The exit status is 0 whether or not anything is found.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format must be table or json, not %q", format)
			}
			opts := dlp.Options{}
			if cfgPath != "" {
				cfg, err := config.Load(cfgPath)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return &exitError{code: 1, err: fmt.Errorf("%s is not valid", cfgPath)}
				}
				if cfg.DLP != nil {
					if opts, err = dlp.OptionsFrom(cfg.DLP); err != nil {
						return err
					}
				}
			}
			if minConf != "" {
				c, err := dlp.ParseConfidence(minConf)
				if err != nil {
					return fmt.Errorf("--min-confidence: %w", err)
				}
				opts.MinConfidence = c
			}
			s, err := dlp.New(opts)
			if err != nil {
				return err
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			data, err := io.ReadAll(io.LimitReader(in, maxScanInput+1))
			if err != nil {
				return err
			}
			if len(data) > maxScanInput {
				return fmt.Errorf("the input is larger than %d MiB", maxScanInput>>20)
			}
			out := cmd.OutOrStdout()
			fs := s.Scan(data)
			if format == "json" {
				for _, f := range fs {
					b, err := json.Marshal(f)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "%s\n", b)
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "START\tEND\tTYPE\tCLASS\tCONFIDENCE\tENCODING")
			for _, f := range fs {
				enc := f.Encoding
				if enc == "" {
					enc = "-"
				}
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\n", f.Start, f.End, f.Type, f.Class, f.Confidence, enc)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			noun := "findings"
			if len(fs) == 1 {
				noun = "finding"
			}
			fmt.Fprintln(cmd.ErrOrStderr(), strconv.Itoa(len(fs)), noun)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", "", "configuration whose dlp section (detectors, allow-lists, disabled types, min_confidence) to use")
	fl.StringVar(&format, "format", "table", "output: table, or json (one finding per line)")
	fl.StringVar(&minConf, "min-confidence", "", "report findings of at least this confidence: low, medium or high (default: the configuration's, else medium)")
	return cmd
}
