//! Numbers as people read them in reports and terminals.

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An integer the Vietnamese way: `1234567` → `1.234.567`.
pub fn vi_integer(n: i64) -> String {
    let grouped = thousands(n.unsigned_abs()).replace(',', ".");
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A decimal the Vietnamese way, with `decimals` places: `98.25` → `98,25`,
/// `1234.5` → `1.234,50`.
pub fn vi_decimal(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let whole = thousands(whole.parse().unwrap_or(0)).replace(',', ".");
    let sign = if x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole},{fraction}")
    }
}

/// A decimal as a Vietnamese (`1.234,50`) or English (`1,234.50`) reader
/// writes it.
pub fn decimal_in(x: f64, decimals: usize, english: bool) -> String {
    let vi = vi_decimal(x, decimals);
    match english {
        false => vi,
        true => vi
            .chars()
            .map(|c| match c {
                '.' => ',',
                ',' => '.',
                c => c,
            })
            .collect(),
    }
}

/// An integer as a Vietnamese (`1.234`) or English (`1,234`) reader writes it.
pub fn integer_in(n: i64, english: bool) -> String {
    let vi = vi_integer(n);
    match english {
        false => vi,
        true => vi.replace('.', ","),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vietnamese_numbers() {
        assert_eq!(super::vi_integer(1_234_567), "1.234.567");
        assert_eq!(super::vi_integer(-1_000), "-1.000");
        assert_eq!(super::vi_decimal(98.25, 2), "98,25");
        assert_eq!(super::decimal_in(1234.5, 2, true), "1,234.50");
        assert_eq!(super::decimal_in(-7.236, 2, false), "-7,24");
        assert_eq!(super::integer_in(8000, false), "8.000");
        assert_eq!(super::integer_in(8000, true), "8,000");
        assert_eq!(super::vi_decimal(1234.5, 1), "1.234,5");
        assert_eq!(super::vi_decimal(-0.001, 2), "0,00");
        assert_eq!(super::vi_decimal(-2.5, 2), "-2,50");
    }

    #[test]
    fn groups_of_three() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_000), "1,000");
        assert_eq!(super::thousands(10_695_745), "10,695,745");
    }
}
