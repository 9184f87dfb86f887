package nftables

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// OpKind is what an Op does.
type OpKind uint8

// The operations a transaction is made of. The driver plans changes as
// ops; a Runner writes a list of them as one netlink batch, which the
// kernel applies atomically or not at all.
const (
	OpAddTable   OpKind = iota + 1 // create the table (no error if it exists)
	OpDelTable                     // delete the table and everything in it
	OpAddChain                     // create Chain (a base chain when Base is set); no error if it exists
	OpFlushChain                   // delete every rule of Chain
	OpDelChain                     // delete Chain, which must be empty and unreferenced
	OpAddRule                      // append Rule to Chain
	OpAddSet                       // create Set (no error if it exists with the same type)
	OpDelSet                       // delete Set, which no rule may look up
	OpAddElems                     // add Elems to Set
	OpDelElems                     // delete Elems from Set
	OpFlushSet                     // delete every element of Set
)

// Op is one change to the table.
type Op struct {
	Kind  OpKind
	Chain string
	Base  *BaseChain // OpAddChain
	Rule  *Rule      // OpAddRule
	Set   SetSpec    // OpAddSet; the name alone for the other set ops
	Elems []Elem     // OpAddElems, OpDelElems
}

// BaseChain is where a chain hooks into the packet path.
type BaseChain struct {
	Type     nftables.ChainType
	Hook     nftables.ChainHook
	Priority nftables.ChainPriority
}

// SetSpec describes a named set or verdict map.
type SetSpec struct {
	Name     string
	KeyType  nftables.SetDatatype
	Interval bool
	Map      bool // a verdict map (interface name -> verdict)
}

// Same reports whether two specs describe sets of one type.
func (s SetSpec) Same(o SetSpec) bool {
	return s.Name == o.Name && s.KeyType.Name == o.KeyType.Name && s.KeyType.Bytes == o.KeyType.Bytes && s.Interval == o.Interval && s.Map == o.Map
}

// Elem is one element of a set or map. An interval set holds a network
// as two elements: its first address, and the address after its last
// with IntervalEnd (none when the network reaches the end of the address
// space).
type Elem struct {
	Key         []byte
	IntervalEnd bool
	Verdict     *expr.Verdict // maps
}

// State is the table as the kernel has it.
type State struct {
	Chains map[string]*ChainState
	Sets   map[string]*SetState
}

// ChainState is a chain as read back: its hook and its rules' hashes.
type ChainState struct {
	Base   *BaseChain
	Hashes []string // "" for a rule without our comment
}

// SetState is a set or map as read back.
type SetState struct {
	Spec  SetSpec
	Elems []Elem
}

// Runner is the seam between the driver and the kernel: it reads the
// table and writes transactions. NetlinkRunner is the kernel's;
// dataplane/internal/fakekernel has one for unit tests.
type Runner interface {
	// Read returns the table of the family, or nil when there is none.
	Read(family int, table string) (*State, error)
	// Run writes the ops as one transaction on the table.
	Run(family int, table string, ops []Op) error
	// Exists reports whether the family has the table (a cheap look).
	Exists(family int, table string) (bool, error)
	// Counters reads the rule counters of the table's chains whose names
	// start with prefix, by chain, in rule order.
	Counters(family int, table, prefix string) (map[string][]RuleCounter, error)
}

// RuleCounter is a rule's packet and byte counters, with its hash (""
// for a rule without our comment).
type RuleCounter struct {
	Hash           string
	Packets, Bytes uint64
}

// Remove deletes the table of a family, if there is one: what a switch
// to iptables mode (or a takeover from Felix's nftables mode) leaves.
func Remove(r Runner, family int) (bool, error) {
	ok, err := r.Exists(family, TableName)
	if err != nil || !ok {
		return false, err
	}
	return true, r.Run(family, TableName, []Op{{Kind: OpAddTable}, {Kind: OpDelTable}})
}

func userdataComment(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

// HashOf reads the hash from a rule's user data ("" when the rule carries
// no comment of ours).
func HashOf(ud []byte) string {
	c, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok || len(c) < len(HashPrefix) || c[:len(HashPrefix)] != HashPrefix {
		return ""
	}
	c = c[len(HashPrefix):]
	for i := 0; i < len(c); i++ {
		if c[i] == ';' {
			return c[:i]
		}
	}
	return ""
}

func (k OpKind) String() string {
	names := [...]string{"", "add table", "delete table", "add chain", "flush chain", "delete chain", "add rule", "add set",
		"delete set", "add elements", "delete elements", "flush set"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("op %d", k)
}
