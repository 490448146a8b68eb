package config

// Approval configures how calls a policy marks require-approval are held
// and approved.
type Approval struct {
	// Via says who is asked: "client" (the calling client, by elicitation
	// or input_required), "approver" (a human outside the agent, through
	// `sluice approve` or the approvals endpoint), or "client-or-approver"
	// (default: the client when it can be asked, else an approver).
	Via string `yaml:"via,omitempty"`
	// Timeout is how long a held call waits for a decision (default 5m); a
	// timeout is a denial.
	Timeout Duration `yaml:"timeout,omitempty"`
	// TTL is how long a granted approval stays valid for the same exact
	// call (default 10m).
	TTL Duration `yaml:"ttl,omitempty"`
	// Approvers are the principals allowed to decide through the approvals
	// endpoint, by subject or group ("group:secops").
	Approvers []string `yaml:"approvers,omitempty,flow"`
}
