//! Group-relative advantages: `A_i = (r_i − mean(r)) / (std(r) + ε)` per group.
//!
//! As R-Zero's `compute_grpo_outcome_advantage`: the std is Bessel-corrected (divisor G−1),
//! ε is added to the std (not under the square root), and a group whose rewards are all
//! equal gets `A = 0` exactly. With `scale_by_std = false` (Dr. GRPO) `A_i = r_i − mean(r)`.

use crate::{Error, Result};

/// Mean and (Bessel) standard deviation of a group's rewards, as the reference computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupStats {
    /// `mean(r)`.
    pub mean: f32,
    /// `std(r)` with divisor `G − 1` (0 for a single reward).
    pub std: f32,
}

/// Mean and Bessel std of one group's rewards (accumulated in f64, rounded to f32).
pub fn group_stats(rewards: &[f32]) -> GroupStats {
    let n = rewards.len();
    if n == 0 {
        return GroupStats {
            mean: 0.0,
            std: 0.0,
        };
    }
    let mean = rewards.iter().map(|&r| r as f64).sum::<f64>() / n as f64;
    let std = if n > 1 {
        let ss: f64 = rewards.iter().map(|&r| (r as f64 - mean).powi(2)).sum();
        (ss / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    GroupStats {
        mean: mean as f32,
        std: std as f32,
    }
}

/// `true` when every reward of the group is the same (its advantages are all 0).
pub fn all_equal(rewards: &[f32]) -> bool {
    rewards.windows(2).all(|w| w[0] == w[1])
}

/// Advantages of one group.
///
/// Errors on an empty group, on a non-finite reward, and on a single-member group when
/// scaling by the std (the reference asserts `G > 1`: the std of one sample is undefined).
pub fn group_advantages(rewards: &[f32], scale_by_std: bool, eps: f64) -> Result<Vec<f32>> {
    if rewards.is_empty() {
        return Err(Error::invalid("a group needs at least one response"));
    }
    if let Some(i) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::invalid(format!(
            "reward {i} of a group is not finite ({})",
            rewards[i]
        )));
    }
    if scale_by_std && rewards.len() < 2 {
        return Err(Error::invalid(
            "a group needs at least two responses to scale advantages by the std",
        ));
    }
    let s = group_stats(rewards);
    let denom = s.std + eps as f32;
    Ok(rewards
        .iter()
        .map(|&r| {
            let centred = r - s.mean;
            if !scale_by_std {
                centred
            } else if centred == 0.0 {
                0.0
            } else {
                centred / denom
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn bessel_std_and_eps_on_the_std() {
        // Hand-made: r = [1, 0, 0.1, 0.9]: mean 0.5, Bessel std sqrt(0.82/3) = 0.5228129.
        let a = group_advantages(&[1.0, 0.0, 0.1, 0.9], true, 1e-6).unwrap();
        let std = (0.82f64 / 3.0).sqrt();
        let want: Vec<f32> = [0.5, -0.5, -0.4, 0.4]
            .iter()
            .map(|c| (c / (std + 1e-6)) as f32)
            .collect();
        assert!(close(&a, &want, 1e-6), "{a:?} vs {want:?}");
        // Population std would give 0.5/0.4528 = 1.104: make sure we are not using it.
        assert!((a[0] - 0.9563632).abs() < 1e-6);
    }

    #[test]
    fn equal_rewards_give_exact_zero_and_two_member_groups_give_plus_minus() {
        let a = group_advantages(&[0.5, 0.5, 0.5, 0.5], true, 1e-6).unwrap();
        assert!(a.iter().all(|&x| x == 0.0));
        assert!(all_equal(&[0.5, 0.5, 0.5]));
        assert!(!all_equal(&[0.5, 0.5, 0.4]));
        // Two members {0, 1}: std = 1/sqrt(2), A = ±0.5·sqrt(2).
        let a = group_advantages(&[0.0, 1.0], true, 0.0).unwrap();
        assert!(close(
            &a,
            &[
                -std::f32::consts::FRAC_1_SQRT_2,
                std::f32::consts::FRAC_1_SQRT_2
            ],
            1e-6
        ));
    }

    #[test]
    fn dr_grpo_does_not_scale() {
        let a = group_advantages(&[1.0, 0.0, 0.0, 0.0], false, 1e-6).unwrap();
        assert!(close(&a, &[0.75, -0.25, -0.25, -0.25], 1e-7), "{a:?}");
        // A single response is allowed without std scaling (its advantage is 0).
        assert_eq!(group_advantages(&[3.0], false, 1e-6).unwrap(), vec![0.0]);
    }

    #[test]
    fn bad_groups_are_errors() {
        assert!(group_advantages(&[], true, 1e-6).is_err());
        assert!(group_advantages(&[1.0], true, 1e-6).is_err());
        assert!(group_advantages(&[1.0, f32::NAN], true, 1e-6).is_err());
    }
}
