package netguard

import "testing"

func TestASCIIHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"München.de", "xn--mnchen-3ya.de"},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"},
		{"hooks.пример.рф", "hooks.xn--e1afmkfd.xn--p1ai"},
		{"ü", "xn--tda"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ASCIIHost(tt.in); got != tt.want {
				t.Fatalf("ASCIIHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
