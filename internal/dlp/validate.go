package dlp

// Checksums and ranges that tell a real identifier from a number that
// only looks like one.

// atoi reads decimal digits (at most 18 matter).
func atoi(d []byte) int {
	n := 0
	for _, c := range d {
		n = n*10 + int(c-'0')
	}
	return n
}

// luhn reports whether digits pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i] - '0')
		if double {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
		double = !double
	}
	return sum%10 == 0
}

// cardIssuer reports whether a card number lies in an issuer's range with
// a length that issuer uses.
func cardIssuer(d []byte) bool {
	n := len(d)
	p := func(k int) int { return atoi(d[:k]) }
	switch {
	case d[0] == '4': // Visa
		return n == 13 || n == 16 || n == 19
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720: // Mastercard
		return n == 16
	case p(2) == 34 || p(2) == 37: // American Express
		return n == 15
	case p(4) == 6011, p(2) == 65, p(3) >= 644 && p(3) <= 649, p(6) >= 622126 && p(6) <= 622925: // Discover
		return n >= 16 && n <= 19
	case p(4) >= 3528 && p(4) <= 3589: // JCB
		return n >= 16 && n <= 19
	case p(3) >= 300 && p(3) <= 305, p(2) == 36, p(2) == 38, p(2) == 39: // Diners Club
		return n >= 14 && n <= 19
	case p(2) == 62: // UnionPay
		return n >= 16 && n <= 19
	case p(2) == 50, p(2) >= 56 && p(2) <= 58, p(4) == 6304, p(4) == 6759: // Maestro
		return n >= 12 && n <= 19
	}
	return false
}

// ssnValid reports whether nine digits are an SSN as issued: area not
// 000, 666 or 900-999, group not 00, serial not 0000.
func ssnValid(d []byte) bool {
	area, group, serial := atoi(d[:3]), atoi(d[3:5]), atoi(d[5:])
	return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

// nirValid checks a French NIR's key: 97 minus the first 13 digits mod 97.
func nirValid(d []byte) bool {
	month := atoi(d[3:5])
	if !(month >= 1 && month <= 12 || month >= 20 && month <= 42 || month >= 50 && month <= 99) {
		return false
	}
	return 97-atoi(d[:13])%97 == atoi(d[13:])
}

// bsnValid is the Dutch eleven-test.
func bsnValid(d []byte) bool {
	sum := 0
	for i := 0; i < 8; i++ {
		sum += int(d[i]-'0') * (9 - i)
	}
	sum -= int(d[8] - '0')
	return sum%11 == 0 && atoi(d) != 0
}

// steuerIDValid checks a German tax ID: ISO 7064 MOD 11,10 over the first
// ten digits, of which one appears twice or three times and some not at
// all.
func steuerIDValid(d []byte) bool {
	var counts [10]int
	for _, c := range d[:10] {
		counts[c-'0']++
	}
	multi := 0
	for _, n := range counts {
		if n > 3 {
			return false
		}
		if n > 1 {
			multi++
		}
	}
	if multi != 1 {
		return false
	}
	product := 10
	for _, c := range d[:10] {
		sum := (int(c-'0') + product) % 10
		if sum == 0 {
			sum = 10
		}
		product = (sum * 2) % 11
	}
	check := 11 - product
	if check == 10 {
		check = 0
	}
	return check == int(d[10]-'0')
}

// mod97 checks an IBAN: its first four characters moved to the end, and
// letters read as 10 to 35, leave 1 modulo 97.
func mod97(s []byte) bool {
	r := 0
	add := func(c byte) {
		switch {
		case '0' <= c && c <= '9':
			r = (r*10 + int(c-'0')) % 97
		default:
			v := int(c-'A') + 10
			r = (r*100 + v) % 97
		}
	}
	for _, c := range s[4:] {
		add(c)
	}
	for _, c := range s[:4] {
		add(c)
	}
	return r == 1
}
