package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path; see [Parse].
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a configuration from data; name (usually the file name) is
// recorded as [Config.Source] and prefixes every error.
//
// Decoding is strict: data must hold exactly one YAML document whose top
// level is a mapping; keys match case-sensitively; unknown keys, duplicate
// keys, merge keys (<<) and values of the wrong type are errors. Defaults are
// then applied (see [Config.ApplyDefaults]), ${VAR} references are expanded
// from the process environment, and the result is validated. All problems
// found at a stage are returned together, each a [*Problem].
func Parse(data []byte, name string) (*Config, error) {
	return parse(data, name, os.LookupEnv)
}

func parse(data []byte, name string, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{Source: name}
	doc, err := c.decodeDocument(data)
	if err != nil {
		return nil, err
	}
	d := &decodeState{c: c, budget: maxNodes}
	d.walk(doc, reflect.TypeFor[Config](), "")
	if len(d.problems) > 0 {
		return nil, joinProblems(d.problems)
	}
	// The walk above has checked every key and value against the schema
	// with paths; the library's own strict decoder fills in the values.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, c.yamlProblems(err)
	}
	c.ApplyDefaults()
	expandProblems := c.expand(lookup)
	problems := c.validate()
	if len(expandProblems) > 0 {
		// A value whose expansion failed still holds its ${...} text: do not
		// also report that text as invalid.
		failed := make(map[string]bool, len(expandProblems))
		for _, p := range expandProblems {
			failed[p.Path] = true
		}
		kept := expandProblems
		for _, p := range problems {
			if !failed[p.Path] {
				kept = append(kept, p)
			}
		}
		problems = kept
	}
	sortProblems(problems)
	if err := joinProblems(problems); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeDocument parses data into a node tree and checks that it is one
// document whose top level is a mapping.
func (c *Config) decodeDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, joinProblems([]*Problem{{File: c.Source, Msg: "configuration is empty"}})
		}
		return nil, c.yamlProblems(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, c.yamlProblems(err)
	default:
		return nil, joinProblems([]*Problem{{File: c.Source, Line: extra.Line, Msg: "more than one YAML document (remove the second \"---\")"}})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, joinProblems([]*Problem{{File: c.Source, Line: root.Line, Msg: "top level must be a mapping, got " + kindName(root)}})
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns an error of the YAML library into problems with the
// file name and line.
func (c *Config) yamlProblems(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	problems := make([]*Problem, 0, len(msgs))
	for _, m := range msgs {
		p := &Problem{File: c.Source, Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Msg = sm[2]
		}
		if isParserError(p.Msg) {
			// The library reports the line of a parser error (as opposed to
			// a scanner error) counting from 0, and leaves out line 0.
			p.Line++
		}
		problems = append(problems, p)
	}
	return joinProblems(problems)
}

// isParserError reports whether msg is one of the YAML parser's own
// problems (see parserc.go in the YAML library).
func isParserError(msg string) bool {
	for _, prefix := range []string{
		"did not find expected ",
		"found undefined tag handle",
		"found duplicate %YAML directive",
		"found duplicate %TAG directive",
		"found incompatible YAML document",
	} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// maxNodes bounds the nodes visited while checking a document, counting a
// node once for each alias that reaches it, so that a small document cannot
// expand into a huge one.
const maxNodes = 1 << 18

// decodeState checks a YAML node tree against the Go types of the schema,
// recording the line of every path and a problem for every key or value that
// does not fit.
type decodeState struct {
	c        *Config
	problems []*Problem
	budget   int
	scalars  map[scalarKey]bool // whether a scalar node decodes into a type, for nodes reached again through aliases
}

type scalarKey struct {
	n *yaml.Node
	t reflect.Type
}

var durationType = reflect.TypeFor[Duration]()

func (d *decodeState) add(line int, path, format string, args ...any) {
	d.problems = append(d.problems, &Problem{File: d.c.Source, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decodeState) setLine(path string, line int) {
	if d.c.lines == nil {
		d.c.lines = make(map[string]int)
	}
	d.c.lines[path] = line
}

// walk checks n against type t at path. Aliases are followed; the schema has
// no recursive types, so following them always ends.
func (d *decodeState) walk(n *yaml.Node, t reflect.Type, path string) {
	if d.budget <= 0 {
		return
	}
	d.budget--
	if d.budget == 0 {
		d.add(n.Line, path, "document too large once aliases are expanded")
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.add(n.Line, path, "alias to an unknown anchor")
			return
		}
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // an empty value leaves the zero value, like the YAML library does
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		d.scalar(n, t, path, "a duration such as \"30s\"")
		return
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		d.mapping(n, t, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(n.Line, path, "expected a list, got %s", kindName(n))
			return
		}
		for i, item := range n.Content {
			p := indexPath(path, i)
			d.setLine(p, item.Line)
			d.walk(item, t.Elem(), p)
		}
	case reflect.String:
		d.scalar(n, t, path, "a string")
	case reflect.Bool:
		d.scalar(n, t, path, "true or false")
	case reflect.Int, reflect.Int64:
		d.scalar(n, t, path, "an integer")
	case reflect.Float64:
		d.scalar(n, t, path, "a number")
	default:
		panic(fmt.Sprintf("config: no YAML check for %s", t))
	}
}

// scalar checks that n is a scalar that the YAML library decodes into t.
func (d *decodeState) scalar(n *yaml.Node, t reflect.Type, path, want string) {
	if n.Kind != yaml.ScalarNode {
		d.add(n.Line, path, "expected %s, got %s", want, kindName(n))
		return
	}
	if (t.Kind() == reflect.Int || t.Kind() == reflect.Int64) && t != durationType && n.ShortTag() != "!!int" {
		// The YAML library would truncate 4.5 to 4 and accept 1e3.
		d.add(n.Line, path, "expected %s, got %q", want, truncate(n.Value, 40))
		return
	}
	if t.Kind() == reflect.Float64 && n.ShortTag() != "!!int" && n.ShortTag() != "!!float" {
		// The YAML library would read "3.5" (quoted) and ".nan" alike.
		d.add(n.Line, path, "expected %s, got %q", want, truncate(n.Value, 40))
		return
	}
	key := scalarKey{n, t}
	ok, seen := d.scalars[key]
	if !seen {
		ok = n.Decode(reflect.New(t).Interface()) == nil
		if d.scalars == nil {
			d.scalars = make(map[scalarKey]bool)
		}
		d.scalars[key] = ok
	}
	if !ok {
		d.add(n.Line, path, "expected %s, got %q", want, truncate(n.Value, 40))
	}
}

// mapping checks a mapping node against a struct type (known keys only) or
// a map type (any string keys).
func (d *decodeState) mapping(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n.Line, path, "expected a mapping, got %s", kindName(n))
		return
	}
	var fields map[string]reflect.StructField
	if t.Kind() == reflect.Struct {
		fields = yamlFields(t)
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, path, "keys must be plain strings, got %s", kindName(k))
			continue
		}
		if k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			d.add(k.Line, path, "merge keys (<<) are not supported")
			continue
		}
		key := k.Value
		if first, dup := seen[key]; dup {
			d.add(k.Line, path, "duplicate key %q (first at line %d)", truncate(key, 64), first)
			continue
		}
		seen[key] = k.Line
		var elem reflect.Type
		if fields != nil {
			f, ok := fields[key]
			if !ok {
				d.add(k.Line, path, "unknown key %q%s", truncate(key, 64), suggest(key, fields))
				continue
			}
			elem = f.Type
		} else {
			if t.Key().Kind() != reflect.String {
				panic(fmt.Sprintf("config: no YAML check for %s", t))
			}
			if err := k.Decode(new(string)); err != nil {
				d.add(k.Line, path, "keys must be plain strings, got %q", truncate(key, 40))
				continue
			}
			elem = t.Elem()
		}
		p := childPath(path, key)
		d.setLine(p, k.Line)
		d.walk(v, elem, p)
	}
}

// yamlFields maps the YAML key of each field of struct type t to the field.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		fields[name] = f
	}
	return fields
}

// suggest returns ` (did you mean "x"?)` for the known key closest to key,
// when one is close enough to be a likely typo, or "".
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestDist := "", 3
	for _, name := range sortedKeys(fields) {
		if strings.EqualFold(name, key) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
		if dist := editDistance(strings.ToLower(key), name, bestDist); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	if best == "" || len(key) < 4 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance returns the Levenshtein distance between a and b, or limit
// when it is at least limit.
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

// kindName describes a node's kind for an error message.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "an empty value"
		}
		return "a scalar"
	}
	return "nothing"
}
