package pipeline

import "testing"

func TestEventIDsSortInCommitOrder(t *testing.T) {
	cases := []struct {
		lsn   uint64
		index int
		want  string
	}{
		{0, 0, "evt_0000000000000000000000"},
		{0x16b3a28, 3, "evt_00000000016b3a28000003"},
		{0x1_0000_0000, 0xabcdef, "evt_0000000100000000abcdef"},
		{^uint64(0), 0xffffff, "evt_ffffffffffffffffffffff"},
	}
	// Past 6 digits the index widens rather than wraps: ids stay unique.
	if got, want := EventID(7, 0x1000000), "evt_00000000000000071000000"; got != want {
		t.Errorf("EventID(7, 0x1000000) = %s, want %s", got, want)
	}
	for _, c := range cases {
		if got := EventID(c.lsn, c.index); got != c.want {
			t.Errorf("EventID(%#x, %d) = %s, want %s", c.lsn, c.index, got, c.want)
		}
	}
	for i := 1; i < len(cases); i++ {
		if a, b := EventID(cases[i-1].lsn, cases[i-1].index), EventID(cases[i].lsn, cases[i].index); a >= b {
			t.Errorf("%s does not sort before %s", a, b)
		}
	}
}
