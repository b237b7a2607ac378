//! Number types used by the evaluator: exact rationals on checked `i128` arithmetic
//! ([`Q`]) and a small complex type ([`C`]) for numeric evaluation.
//!
//! Every operation is total: overflow or a zero denominator gives `None` (exact) or a
//! non-finite value (numeric), never a panic.

/// An exact rational `n / d` in lowest terms with `d > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Q {
    /// Numerator.
    pub n: i128,
    /// Denominator, always positive.
    pub d: i128,
}

fn gcd(a: i128, b: i128) -> i128 {
    // Works on magnitudes; `unsigned_abs` avoids overflow on i128::MIN.
    let (mut x, mut y) = (a.unsigned_abs(), b.unsigned_abs());
    while y != 0 {
        let t = x % y;
        x = y;
        y = t;
    }
    i128::try_from(x).unwrap_or(1)
}

impl Q {
    /// A rational from numerator and denominator; `None` when `d == 0` or on overflow.
    pub fn new(n: i128, d: i128) -> Option<Q> {
        if d == 0 {
            return None;
        }
        let g = gcd(n, d);
        let g = if g == 0 { 1 } else { g };
        let (mut n, mut d) = (n / g, d / g);
        if d < 0 {
            n = n.checked_neg()?;
            d = d.checked_neg()?;
        }
        Some(Q { n, d })
    }
    /// An integer.
    pub fn int(n: i128) -> Q {
        Q { n, d: 1 }
    }
    /// Whether this is an integer.
    pub fn is_int(&self) -> bool {
        self.d == 1
    }
    /// Sum.
    pub fn add(self, o: Q) -> Option<Q> {
        let g = gcd(self.d, o.d).max(1);
        let l = (self.d / g).checked_mul(o.d)?;
        let a = self.n.checked_mul(l / self.d)?;
        let b = o.n.checked_mul(l / o.d)?;
        Q::new(a.checked_add(b)?, l)
    }
    /// Negation.
    pub fn neg(self) -> Option<Q> {
        Some(Q {
            n: self.n.checked_neg()?,
            d: self.d,
        })
    }
    /// Product.
    pub fn mul(self, o: Q) -> Option<Q> {
        let g1 = gcd(self.n, o.d).max(1);
        let g2 = gcd(o.n, self.d).max(1);
        let n = (self.n / g1).checked_mul(o.n / g2)?;
        let d = (self.d / g2).checked_mul(o.d / g1)?;
        Q::new(n, d)
    }
    /// Reciprocal; `None` for zero.
    pub fn recip(self) -> Option<Q> {
        Q::new(self.d, self.n)
    }
    /// Quotient.
    pub fn div(self, o: Q) -> Option<Q> {
        self.mul(o.recip()?)
    }
    /// Integer power with `|e| <= 512`.
    pub fn powi(self, e: i128) -> Option<Q> {
        if e.unsigned_abs() > 512 {
            return None;
        }
        let mut base = if e < 0 { self.recip()? } else { self };
        let mut k = e.unsigned_abs();
        let mut acc = Q::int(1);
        while k > 0 {
            if k & 1 == 1 {
                acc = acc.mul(base)?;
            }
            k >>= 1;
            if k > 0 {
                base = base.mul(base)?;
            }
        }
        Some(acc)
    }
    /// Exact `k`-th root when it is rational.
    pub fn root(self, k: i128) -> Option<Q> {
        if !(1..=64).contains(&k) {
            return None;
        }
        if self.n < 0 {
            if k % 2 == 0 {
                return None;
            }
            return self.neg()?.root(k)?.neg();
        }
        Q::new(iroot(self.n, k)?, iroot(self.d, k)?)
    }
    /// Floating value.
    pub fn to_f64(self) -> f64 {
        self.n as f64 / self.d as f64
    }
}

/// Exact integer k-th root of a non-negative integer, when it exists.
fn iroot(x: i128, k: i128) -> Option<i128> {
    if x < 0 {
        return None;
    }
    if x < 2 {
        return Some(x);
    }
    let guess = (x as f64).powf(1.0 / k as f64).round() as i128;
    [guess - 1, guess, guess + 1]
        .into_iter()
        .find(|&c| c >= 0 && Q::int(c).powi(k).map(|p| p.n) == Some(x))
}

/// A complex number for numeric evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct C {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl C {
    /// A real number.
    pub fn r(re: f64) -> C {
        C { re, im: 0.0 }
    }
    /// Not a number.
    pub fn nan() -> C {
        C {
            re: f64::NAN,
            im: f64::NAN,
        }
    }
    /// Whether both parts are finite.
    pub fn is_finite(&self) -> bool {
        self.re.is_finite() && self.im.is_finite()
    }
    /// Modulus.
    pub fn abs(&self) -> f64 {
        self.re.hypot(self.im)
    }
    /// Sum.
    pub fn add(self, o: C) -> C {
        C {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    /// Difference.
    pub fn sub(self, o: C) -> C {
        C {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
    /// Negation.
    pub fn neg(self) -> C {
        C {
            re: -self.re,
            im: -self.im,
        }
    }
    /// Product.
    pub fn mul(self, o: C) -> C {
        if self.im == 0.0 && o.im == 0.0 {
            return C::r(self.re * o.re);
        }
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    /// Quotient.
    pub fn div(self, o: C) -> C {
        if o.re == 0.0 && o.im == 0.0 {
            // Division by zero has no value (not an infinity that would equal others).
            return C::nan();
        }
        if self.im == 0.0 && o.im == 0.0 {
            return C::r(self.re / o.re);
        }
        let den = o.re * o.re + o.im * o.im;
        C {
            re: (self.re * o.re + self.im * o.im) / den,
            im: (self.im * o.re - self.re * o.im) / den,
        }
    }
    /// Natural logarithm (principal branch).
    pub fn ln(self) -> C {
        if self.im == 0.0 && self.re > 0.0 {
            return C::r(self.re.ln());
        }
        C {
            re: self.abs().ln(),
            im: self.im.atan2(self.re),
        }
    }
    /// Exponential.
    pub fn exp(self) -> C {
        let m = self.re.exp();
        if self.im == 0.0 {
            return C::r(m);
        }
        C {
            re: m * self.im.cos(),
            im: m * self.im.sin(),
        }
    }
    /// Power (principal branch; exact repeated multiplication for small integer exponents).
    pub fn pow(self, e: C) -> C {
        if e.im == 0.0 && e.re.fract() == 0.0 && e.re.abs() <= 64.0 {
            let k = e.re as i32;
            if self.im == 0.0 {
                return C::r(self.re.powi(k));
            }
            let mut acc = C::r(1.0);
            for _ in 0..k.unsigned_abs() {
                acc = acc.mul(self);
            }
            return if k < 0 { C::r(1.0).div(acc) } else { acc };
        }
        if self.im == 0.0 && e.im == 0.0 && self.re >= 0.0 {
            return C::r(self.re.powf(e.re));
        }
        if self.re == 0.0 && self.im == 0.0 {
            return if e.re > 0.0 { C::r(0.0) } else { C::nan() };
        }
        self.ln().mul(e).exp()
    }
    /// Square root (principal branch).
    pub fn sqrt(self) -> C {
        if self.im == 0.0 && self.re >= 0.0 {
            return C::r(self.re.sqrt());
        }
        self.pow(C::r(0.5))
    }
    /// Sine.
    pub fn sin(self) -> C {
        C {
            re: self.re.sin() * self.im.cosh(),
            im: self.re.cos() * self.im.sinh(),
        }
    }
    /// Cosine.
    pub fn cos(self) -> C {
        C {
            re: self.re.cos() * self.im.cosh(),
            im: -self.re.sin() * self.im.sinh(),
        }
    }
}

/// Whether two numeric values agree within a relative tolerance `rel`
/// (with an absolute floor for values near zero). Equal infinities agree.
pub fn close(a: C, b: C, rel: f64) -> bool {
    if !a.is_finite() || !b.is_finite() {
        return a.im == 0.0
            && b.im == 0.0
            && a.re.is_infinite()
            && b.re.is_infinite()
            && a.re.signum() == b.re.signum();
    }
    let scale = a.abs().max(b.abs()).max(1.0);
    a.sub(b).abs() <= rel * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rational_arithmetic() {
        let h = Q::new(1, 2).unwrap();
        let t = Q::new(1, 3).unwrap();
        assert_eq!(h.add(t), Q::new(5, 6));
        assert_eq!(h.div(t), Q::new(3, 2));
        assert_eq!(Q::new(2, -4), Q::new(-1, 2));
        assert_eq!(Q::new(8, 27).unwrap().root(3), Q::new(2, 3));
        assert_eq!(Q::int(2).root(2), None);
        assert_eq!(Q::int(10).powi(200), None);
        assert_eq!(Q::int(i128::MAX).add(Q::int(1)), None);
        assert_eq!(Q::new(1, 0), None);
    }

    #[test]
    fn complex_basics() {
        let i = C { re: 0.0, im: 1.0 };
        assert!(close(i.mul(i), C::r(-1.0), 1e-12));
        assert!(close(C::r(-4.0).sqrt(), C { re: 0.0, im: 2.0 }, 1e-12));
        assert!(close(C::r(f64::INFINITY), C::r(f64::INFINITY), 1e-9));
        assert!(!close(C::r(f64::INFINITY), C::r(f64::NEG_INFINITY), 1e-9));
    }
}
