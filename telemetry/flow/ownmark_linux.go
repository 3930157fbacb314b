package flow

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// OwnMarkTableName is the nftables table that copies the agent's socket
// mark into its connections' conntrack mark.
const OwnMarkTableName = "netward_flowmark"

// OwnMarkTable copies the socket mark of the agent's own sockets into the
// conntrack mark of their connections, so the flow source can leave the
// agent's own traffic out even when its socket is already closed by the
// time the NEW event is read (a UDP upstream query):
//
//	table inet netward_flowmark {
//	  chain output { type filter hook output priority mangle (-150);
//	    meta mark == mark ct mark set mark
//	  }
//	}
//
// The table is owned by its netlink socket: it disappears with the agent.
type OwnMarkTable struct{ nft *nftables.Conn }

// InstallOwnMark installs the table (needs CAP_NET_ADMIN).
func InstallOwnMark(mark uint32) (*OwnMarkTable, error) {
	nft, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("flow mark: open nftables netlink: %w", err)
	}
	nft.DelTable(&nftables.Table{Name: OwnMarkTableName, Family: nftables.TableFamilyINet})
	_ = nft.Flush()
	tbl := nft.AddTable(&nftables.Table{Name: OwnMarkTableName, Family: nftables.TableFamilyINet, Flags: nftables.TableFlagOwner})
	ch := nft.AddChain(&nftables.Chain{Name: "output", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle})
	nft.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}})
	if err := nft.Flush(); err != nil {
		_ = nft.CloseLasting()
		return nil, fmt.Errorf("flow mark: install nftables table %s (needs root and Linux ≥ 5.12 for owner tables): %w", OwnMarkTableName, err)
	}
	return &OwnMarkTable{nft: nft}, nil
}

// Close removes the table.
func (t *OwnMarkTable) Close() error {
	t.nft.DelTable(&nftables.Table{Name: OwnMarkTableName, Family: nftables.TableFamilyINet})
	_ = t.nft.Flush()
	return t.nft.CloseLasting()
}
