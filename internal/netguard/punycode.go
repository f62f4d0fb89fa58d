package netguard

import (
	"strings"
	"unicode/utf8"
)

// ASCIIHost returns a host name in the form DNS, TLS and the Host header
// need: each label with non-ASCII characters lower-cased and encoded as
// "xn--" + Punycode (RFC 3492). ASCII names come back unchanged. (This is
// the encoding step of IDNA, without its full mapping tables: enough for
// the names CheckURL accepts.)
func ASCIIHost(host string) string {
	ascii := true
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return host
	}
	labels := strings.Split(strings.ToLower(host), ".")
	for i, l := range labels {
		for j := 0; j < len(l); j++ {
			if l[j] >= utf8.RuneSelf {
				labels[i] = "xn--" + punycode([]rune(l))
				break
			}
		}
	}
	return strings.Join(labels, ".")
}

// punycode encodes a label (RFC 3492, section 6.3).
func punycode(input []rune) string {
	const (
		base, tmin, tmax   = 36, 1, 26
		initialBias, initN = 72, 128
	)
	var out []byte
	for _, r := range input {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := rune(initN), 0, initialBias
	for h < len(input) {
		m := rune(0x7fffffff)
		for _, r := range input {
			if r >= n && r < m {
				m = r
			}
		}
		delta += int(m-n) * (h + 1)
		n = m
		for _, r := range input {
			if r < n {
				delta++
			}
			if r != n {
				continue
			}
			q := delta
			for k := base; ; k += base {
				t := min(max(k-bias, tmin), tmax)
				if q < t {
					break
				}
				out = append(out, digit(t+(q-t)%(base-t)))
				q = (q - t) / (base - t)
			}
			out = append(out, digit(q))
			bias = adapt(delta, h+1, h == b)
			delta = 0
			h++
		}
		delta++
		n++
	}
	return string(out)
}

func adapt(delta, points int, first bool) int {
	const base, tmin, tmax, skew, damp = 36, 1, 26, 38, 700
	if first {
		delta /= damp
	} else {
		delta /= 2
	}
	delta += delta / points
	k := 0
	for delta > ((base-tmin)*tmax)/2 {
		delta /= base - tmin
		k += base
	}
	return k + (base-tmin+1)*delta/(delta+skew)
}

func digit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}
