package dlp

import (
	"bytes"
	"math"
	"regexp"
	"strings"
)

// secretRule finds one kind of secret. The scanner runs it only where one
// of its keywords occurs: its pattern is matched in a window of the text
// around the keyword, and group 1 of the pattern (or the whole match) is
// the secret.
type secretRule struct {
	typ      string
	keywords []string
	// exact keeps only keyword occurrences spelled in this case (most
	// token prefixes are case-sensitive; the keyword index is not).
	exact bool
	re    *regexp.Regexp
	// before and after bound the window: bytes before the keyword's start
	// and after its end.
	before, after int
	// entropy is the least Shannon entropy (bits per byte) of the secret.
	entropy float64
	conf    Confidence
	// follow, when set, must accept the byte after the keyword: a cheap
	// test before the pattern runs, for keywords common in other text.
	follow func(byte) bool
	// mid is set when a keyword may lie inside a match rather than start
	// it: the pattern then searches the window. Otherwise it is matched
	// once, anchored at the keyword (anchored, with boundary saying
	// whether the byte before must not be a word character).
	mid      bool
	anchored *regexp.Regexp
	boundary bool
}

// anchor derives a rule's anchored pattern from its pattern, which starts
// where its keywords do.
func (r *secretRule) anchor() {
	p := r.re.String()
	flags := ""
	if rest, ok := strings.CutPrefix(p, "(?i)"); ok {
		flags, p = "(?i)", rest
	}
	if rest, ok := strings.CutPrefix(p, `\b`); ok {
		r.boundary, p = true, rest
	}
	r.anchored = regexp.MustCompile(flags + "^(?:" + p + ")")
}

func init() {
	for _, r := range secretRules {
		if !r.mid {
			r.anchor()
		}
	}
}

func isHexByte(c byte) bool { _, ok := hexVal(c); return ok }

// Secret types every deployment knows. The token formats are the vendors'
// public ones; each rule is anchored on the literal prefix of its format,
// or on a word that must name the value (an assignment).
var secretRules = []*secretRule{
	// Cloud providers.
	tok("aws-access-key-id", `\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b`, "AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
	{typ: "aws-secret-access-key", keywords: []string{"secret_access_key", "secretaccesskey", "secret-access-key", "aws_secret", "aws-secret", "awssecret"},
		re:     regexp.MustCompile(`(?i)secret[_-]?(?:access[_-]?)?key[\x00"']{0,2}[\s\x00]{0,5}[:=]{1,2}[\s\x00]{0,5}[\x00"']{0,2}([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)`),
		before: 12, after: 80, entropy: 4, conf: High, mid: true},
	tok("gcp-api-key", `\b(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)`, "AIza"),
	{typ: "azure-storage-account-key", keywords: []string{"accountkey="}, re: regexp.MustCompile(`(?i)AccountKey=([A-Za-z0-9+/]{86}==)`), after: 100, conf: High},
	midTok("azure-ad-client-secret", `(?:^|[^A-Za-z0-9_~.])([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?:[^A-Za-z0-9_~.-]|$)`, 8, "Q~"),
	tok("alibaba-access-key-id", `\b(LTAI[A-Za-z0-9]{20})\b`, "LTAI"),
	tok("digitalocean-token", `\b(do[opr]_v1_[a-f0-9]{64})\b`, "dop_v1_", "doo_v1_", "dor_v1_"),
	{typ: "heroku-api-key", keywords: []string{"heroku"},
		re:     regexp.MustCompile(`(?i)heroku[a-z0-9_ .,-]{0,25}[\x00"']{0,2}[\s\x00]{0,5}[:=]{1,2}[\s\x00]{0,5}[\x00"']{0,2}([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b`),
		before: 0, after: 100, conf: High},
	tok("hashicorp-vault-token", `\b(hv[sb]\.[A-Za-z0-9_-]{24,300})`, "hvs.", "hvb."),
	midTok("terraform-cloud-token", `\b([A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70})`, 15, ".atlasv1."),
	tok("doppler-token", `\b(dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44})`, "dp.pt.", "dp.st.", "dp.sa.", "dp.ct."),
	tok("databricks-token", `\b(dapi[a-f0-9]{32}(?:-\d)?)\b`, "dapi"),
	tok("pulumi-token", `\b(pul-[a-f0-9]{40})\b`, "pul-"),
	tok("planetscale-token", `\b(pscale_(?:tkn|pw|oauth)_[A-Za-z0-9=._-]{32,64})`, "pscale_"),
	tok("grafana-token", `\b(glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})`, "glc_", "glsa_"),
	tok("new-relic-key", `\b(NRAK-[A-Z0-9]{27})\b`, "NRAK-"),
	tok("sentry-token", `\b(sntrys_eyJ[A-Za-z0-9+/=_-]{50,400}|sntryu_[a-f0-9]{64})`, "sntrys_", "sntryu_"),
	// Source control and package registries.
	tok("github-token", `\b(gh[pousr]_[A-Za-z0-9]{36,255})\b`, "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
	tok("github-fine-grained-token", `\b(github_pat_[A-Za-z0-9_]{82})\b`, "github_pat_"),
	tok("gitlab-token", `\b((?:glpat|gldt|glrt|glptt|glft|glsoat|gloas)-[A-Za-z0-9_-]{20,50})`, "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "gloas-"),
	tok("npm-token", `\b(npm_[A-Za-z0-9]{36})\b`, "npm_"),
	tok("pypi-token", `\b(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000})`, "pypi-AgEIcHlwaS5vcmc"),
	tok("rubygems-token", `\b(rubygems_[a-f0-9]{48})\b`, "rubygems_"),
	tok("nuget-key", `\b(oy2[a-z0-9]{43})\b`, "oy2"),
	tok("docker-token", `\b(dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,40})`, "dckr_pat_", "dckr_oat_"),
	// Payments.
	tok("stripe-key", `\b((?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99})\b`, "sk_test_", "sk_live_", "sk_prod_", "rk_test_", "rk_live_", "rk_prod_"),
	tok("square-token", `\b(sq0atp-[0-9A-Za-z_-]{22}|sq0csp-[0-9A-Za-z_-]{43}|EAAA[A-Za-z0-9_-]{60})(?:[^0-9A-Za-z_-]|$)`, "sq0atp-", "sq0csp-", "EAAA"),
	tok("braintree-token", `(access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32})`, "access_token$production$"),
	tok("shopify-token", `\b(shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32})\b`, "shpat_", "shpca_", "shppa_", "shpss_"),
	// Messaging and e-mail.
	tok("slack-token", `\b(xox[baprse]-[0-9A-Za-z-]{10,250}|xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)`, "xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-", "xoxe-", "xapp-"),
	tok("slack-webhook", `(hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56})`, "hooks.slack.com/"),
	tok("discord-webhook", `(discord(?:app)?\.com/api/webhooks/\d{15,20}/[A-Za-z0-9_-]{60,70})`, "discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
	{typ: "telegram-bot-token", keywords: []string{":AA"}, exact: true, re: regexp.MustCompile(`(?:^|[^0-9])(\d{8,10}:AA[0-9A-Za-z_-]{33})(?:[^0-9A-Za-z_-]|$)`), before: 12, after: 40, conf: High, mid: true},
	{typ: "twilio-key", keywords: []string{"SK", "AC"}, exact: true, follow: isHexByte, re: regexp.MustCompile(`\b((?:SK|AC)[0-9a-f]{32})\b`), before: 1, after: 34, entropy: 3, conf: Medium},
	tok("sendgrid-key", `\b(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})(?:[^A-Za-z0-9_-]|$)`, "SG."),
	{typ: "mailgun-key", keywords: []string{"key-"}, exact: true, follow: isHexByte, re: regexp.MustCompile(`\b(key-[a-f0-9]{32})\b`), before: 1, after: 34, entropy: 3, conf: Medium},
	{typ: "mailchimp-key", keywords: []string{"-us"}, exact: true, follow: isDigit, re: regexp.MustCompile(`\b([0-9a-f]{32}-us\d{1,2})\b`), before: 33, after: 3, entropy: 3, conf: High, mid: true},
	// AI providers.
	midTok("openai-key", `\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}|sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})(?:[^A-Za-z0-9_-]|$)`, 24, "sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"),
	tok("anthropic-key", `\b(sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA)(?:[^A-Za-z0-9_-]|$)`, "sk-ant-"),
	tok("huggingface-token", `\b(hf_[A-Za-z]{34})\b`, "hf_"),
	tok("groq-key", `\b(gsk_[A-Za-z0-9]{52})\b`, "gsk_"),
	tok("perplexity-key", `\b(pplx-[A-Za-z0-9]{48})\b`, "pplx-"),
	// Other services.
	tok("atlassian-token", `\b(ATATT3[A-Za-z0-9_=-]{150,250})`, "ATATT3"),
	tok("linear-key", `\b(lin_api_[A-Za-z0-9]{40})\b`, "lin_api_"),
	tok("notion-token", `\b(ntn_\d{11}[A-Za-z0-9]{32,35}|secret_[A-Za-z0-9]{43})\b`, "ntn_", "secret_"),
	tok("postman-key", `\b(PMAK-[a-f0-9]{24}-[a-f0-9]{34})\b`, "PMAK-"),
	tok("age-secret-key", `(AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})`, "AGE-SECRET-KEY-1"),
	// Formats.
	{typ: "jwt", keywords: []string{"eyJ"}, exact: true, follow: isAlnum,
		re:     regexp.MustCompile(`\b(eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{10,})`),
		before: 1, after: 12000, conf: High},
	{typ: "private-key", keywords: []string{"-----BEGIN"},
		re:    regexp.MustCompile(`(-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\s\S]{64,}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----)`),
		after: 16384, conf: High},
	{typ: "database-url-password", keywords: []string{"postgres://", "postgresql://", "mysql://", "mariadb://", "mongodb://", "mongodb+srv://", "redis://", "rediss://", "amqp://", "amqps://", "mssql://", "sqlserver://", "clickhouse://", "cockroachdb://"},
		re:     regexp.MustCompile(`(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|clickhouse|cockroachdb)://[^\s:@/"'<>]*:([^\s@/"'<>]{3,128})@[^\s"'<>]+`),
		before: 1, after: 400, conf: High},
	// Assignments of a value to a name that says it is secret.
	{typ: genericType, keywords: []string{"key", "token", "secret", "passw", "pwd", "credential", "auth"},
		re:     regexp.MustCompile(`(?i)(?:key|token|secret|passwd|password|pwd|credentials?|auth)[a-z0-9_.-]{0,20}[\x00"']{0,2}[\s\x00]{0,5}(?::=|=>|=|:)[\s\x00]{0,5}[\x00"']{0,2}([A-Za-z0-9_+/=~.!@#$%^&*-]{10,150})(?:[\x00"'\s,;})\]]|$)`),
		before: 30, after: 190, entropy: 3.5, conf: Medium},
}

// genericType is the type of the rule for assignments of values to names
// that say they are secret: any other rule that finds the same value says
// more.
const genericType = "generic-secret"

// tok is a rule for a token with its own literal, case-sensitive prefix.
func tok(typ, pattern string, prefixes ...string) *secretRule {
	return &secretRule{typ: typ, keywords: prefixes, exact: true, re: regexp.MustCompile(pattern), before: 1, after: 1024, conf: High}
}

// midTok is a rule for a token whose keyword may come up to before bytes
// after its start.
func midTok(typ, pattern string, before int, keywords ...string) *secretRule {
	r := tok(typ, pattern, keywords...)
	r.before, r.after, r.mid = before, 256, true
	return r
}

// placeholders are values that stand in for secrets in documentation and
// templates: never reported.
var placeholders = []string{"example", "changeme", "change_me", "your_", "your-", "xxxxx", "*****", "<", "${", "{{", "redacted", "placeholder", "dummy", "sample", "notasecret", "not_a_secret", "secret_key_here", "insert", "0000000000", "1234567890", "abcdefghij"}

func isPlaceholder(v []byte) bool {
	var buf [256]byte
	l := buf[:0]
	for _, c := range v[:min(len(v), len(buf))] {
		l = append(l, lower(c))
	}
	for _, p := range placeholders {
		if bytes.Contains(l, []byte(p)) {
			return true
		}
	}
	return false
}

// entropy is the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	e := 0.0
	n := float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			e -= p * math.Log2(p)
		}
	}
	return e
}

// genericValueOK keeps a generic assignment's value only when it looks
// like a credential: letters and digits mixed, not a word or a path, not a
// reference to something else.
func genericValueOK(v []byte) bool {
	var digits, letters, upper, lowerN int
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'z':
			letters++
			lowerN++
		case 'A' <= c && c <= 'Z':
			letters++
			upper++
		}
	}
	if digits == 0 || letters == 0 {
		return false
	}
	s := string(v)
	if strings.HasPrefix(s, "http") || strings.Count(s, "/") > 2 || strings.Count(s, ".") > 2 {
		return false
	}
	return true
}
