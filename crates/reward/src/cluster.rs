//! Agglomerative clustering with average linkage and a distance threshold, giving the
//! partition of scikit-learn's
//! `AgglomerativeClustering(n_clusters=None, distance_threshold=t, metric="precomputed",
//! linkage="average")`, and R-Zero's repetition penalty.
//!
//! # How scikit-learn gets its partition
//! scikit-learn hands the upper triangle to `scipy.cluster.hierarchy.linkage(method=
//! "average")`, which runs SciPy's nearest-neighbour chain (`_hierarchy.nn_chain`), sorts
//! the merges by distance (stable) and then keeps `count(merge distance >= t) + 1` clusters,
//! i.e. it undoes every merge at distance `>= t`. [`average_linkage`] is a line-by-line port
//! of `nn_chain` (same scan order, same strict `<`, same preference for the previous chain
//! element, same update `(n_x·d_xi + n_y·d_yi) / (n_x + n_y)` in f64), so ties are broken
//! exactly as SciPy breaks them; [`cut`] keeps the merges at distance `< t`.
//! Time O(n²), memory: the condensed f64 matrix (n = 8,000: 256 MB), updated in place.
//!
//! Labels are numbered by first appearance (0 for the first question's cluster, then 1 for
//! the first question not in it, ...). scikit-learn numbers them differently; only the
//! partition is specified.

use crate::distance::{bleu_distances, condensed_index, CondensedMatrix};

/// R-Zero's clustering threshold on BLEU distance (`distance_threshold=0.5`).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// One merge of the dendrogram: clusters represented by `a < b` (SciPy's `nn_chain`
/// convention: the merged cluster keeps index `b`) at `distance`, new size `size`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merge {
    /// Smaller representative index (dropped).
    pub a: usize,
    /// Larger representative index (keeps the merged cluster).
    pub b: usize,
    /// Average-linkage distance of the merge.
    pub distance: f64,
    /// Size of the merged cluster.
    pub size: usize,
}

/// Average-linkage merges in the order SciPy's `nn_chain` finds them (not sorted).
/// Consumes the matrix (updated in place as cluster distances).
pub fn average_linkage(mut dist: CondensedMatrix) -> Vec<Merge> {
    let n = dist.n();
    if n < 2 {
        return Vec::new();
    }
    let d = dist.as_mut_slice();
    let mut size = vec![1usize; n];
    // Active clusters in increasing index order: scanning them visits the same `i` as
    // SciPy's `for i in range(n): if size[i] == 0: continue`.
    let mut active: Vec<usize> = (0..n).collect();
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    let mut merges = Vec::with_capacity(n - 1);
    for _ in 0..n - 1 {
        if chain.is_empty() {
            chain.push(active[0]);
        }
        let (x, y, current_min) = loop {
            let x = *chain.last().expect("chain is non-empty");
            let (mut y, mut current_min) = if chain.len() > 1 {
                let y = chain[chain.len() - 2];
                (y, d[condensed_index(n, x, y)])
            } else {
                (usize::MAX, f64::INFINITY)
            };
            // SciPy scans i in index order with a strict `<` starting from the previous
            // element's distance: the result is the first index of the minimum when that
            // minimum is below the start value, else the previous element.
            let (m, first) = nearest(d, n, x, &active);
            if m < current_min {
                current_min = m;
                y = first;
            }
            if chain.len() > 1 && y == chain[chain.len() - 2] {
                break (x, y, current_min);
            }
            if y == usize::MAX {
                // Only NaN distances are left: SciPy would reuse a stale `y`; treat the
                // first other active cluster as the neighbour so that we still terminate.
                y = *active
                    .iter()
                    .find(|&&i| i != x)
                    .expect("two active clusters remain");
            }
            chain.push(y);
        };
        chain.truncate(chain.len() - 2);
        let (x, y) = if x > y { (y, x) } else { (x, y) };
        let (nx, ny) = (size[x], size[y]);
        merges.push(Merge {
            a: x,
            b: y,
            distance: current_min,
            size: nx + ny,
        });
        size[x] = 0;
        size[y] = nx + ny;
        let pos = active.binary_search(&x).expect("x is active");
        active.remove(pos);
        let (fx, fy) = (nx as f64, ny as f64);
        let denom = (nx + ny) as f64;
        for &i in &active {
            if i == y {
                continue;
            }
            let ix = condensed_index(n, i, x);
            let iy = condensed_index(n, i, y);
            d[iy] = (fx * d[ix] + fy * d[iy]) / denom;
        }
    }
    merges
}

/// Active lists at least this long are scanned by two threads.
const PARALLEL_SCAN: usize = 2048;

/// `(min distance from x, first active index attaining it)` over `active` without `x`;
/// `(inf, usize::MAX)` when empty. Ties keep the lower index, as a sequential scan does.
fn nearest(d: &[f64], n: usize, x: usize, active: &[usize]) -> (f64, usize) {
    if active.len() >= PARALLEL_SCAN {
        let (l, r) = active.split_at(active.len() / 2);
        let (a, b) = rayon::join(|| nearest(d, n, x, l), || nearest(d, n, x, r));
        return if b.0 < a.0 { b } else { a };
    }
    let mut best = (f64::INFINITY, usize::MAX);
    // i < x: column x of the upper triangle (strided); i > x: row x (contiguous).
    let split = active.partition_point(|&i| i < x);
    for &i in &active[..split] {
        let v = d[n * i - i * (i + 1) / 2 + (x - i - 1)];
        if v < best.0 {
            best = (v, i);
        }
    }
    let row = n * x - x * (x + 1) / 2; // + (i - x - 1)
    for &i in &active[split..] {
        if i == x {
            continue;
        }
        let v = d[row + (i - x - 1)];
        if v < best.0 {
            best = (v, i);
        }
    }
    best
}

/// The partition left after undoing every merge at distance `>= threshold` (scikit-learn's
/// `n_clusters_ = count(distances >= threshold) + 1` cut), labels by first appearance.
pub fn cut(n: usize, merges: &[Merge], threshold: f64) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for m in merges {
        // `!(d >= t)` rather than `d < t` only differs for NaN, which SciPy sorts last.
        if m.distance < threshold {
            let (ra, rb) = (find(&mut parent, m.a), find(&mut parent, m.b));
            parent[ra] = rb;
        }
    }
    let mut label_of_root = vec![usize::MAX; n];
    let mut next = 0;
    (0..n)
        .map(|i| {
            let r = find(&mut parent, i);
            if label_of_root[r] == usize::MAX {
                label_of_root[r] = next;
                next += 1;
            }
            label_of_root[r]
        })
        .collect()
}

/// Average-linkage clusters of a precomputed distance matrix at `threshold`.
pub fn cluster_distances(dist: CondensedMatrix, threshold: f64) -> Vec<usize> {
    let n = dist.n();
    let merges = average_linkage(dist);
    cut(n, &merges, threshold)
}

/// R-Zero's clustering of a batch of questions: BLEU distances (earlier question =
/// hypothesis), average linkage, `threshold` (0.5 in R-Zero). Labels by first appearance.
pub fn cluster_questions(questions: &[String], threshold: f64) -> Vec<usize> {
    cluster_distances(bleu_distances(questions), threshold)
}

/// Repetition penalty of each item: size of its cluster / batch size.
pub fn repetition_penalties(labels: &[usize]) -> Vec<f64> {
    let n = labels.len();
    let mut sizes = vec![0usize; labels.iter().copied().max().map_or(0, |m| m + 1)];
    for &l in labels {
        sizes[l] += 1;
    }
    labels.iter().map(|&l| sizes[l] as f64 / n as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(n: usize, pairs: &[(usize, usize, f64)], fill: f64) -> CondensedMatrix {
        let mut m = CondensedMatrix::filled(n, fill);
        for &(i, j, v) in pairs {
            m.set(i, j, v);
        }
        m
    }

    #[test]
    fn average_linkage_hand_computed() {
        // 0-1 at 0.2; 2 is at 0.4 from 0 and 0.7 from 1 -> average 0.55: not merged.
        let m = matrix(3, &[(0, 1, 0.2), (0, 2, 0.4), (1, 2, 0.7)], 1.0);
        let merges = average_linkage(m.clone());
        assert_eq!(
            merges[0],
            Merge {
                a: 0,
                b: 1,
                distance: 0.2,
                size: 2
            }
        );
        assert!((merges[1].distance - 0.55).abs() < 1e-15);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 0, 1]);
        // Same but 2 at 0.3 from 1 -> average 0.35: one cluster.
        let m = matrix(3, &[(0, 1, 0.2), (0, 2, 0.4), (1, 2, 0.3)], 1.0);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 0, 0]);
    }

    #[test]
    fn merge_at_exactly_threshold_is_not_made() {
        let m = matrix(2, &[(0, 1, 0.5)], 1.0);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 1]);
        let m = matrix(2, &[(0, 1, 0.49999999999999994)], 1.0);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 0]);
    }

    #[test]
    fn ties_follow_scipy_chain_order() {
        // d(0,1) = d(1,2) = 0.4, d(0,2) = 0.9. The chain starts at 0, whose nearest is 1;
        // from 1 the previous element 0 is preferred on the tie -> merge {0,1}; then
        // d({0,1}, 2) = 0.65 -> {0,1}, {2}. (SciPy gives [[0, 1, 0.4, 2], [2, 3, 0.65, 3]].)
        let m = matrix(3, &[(0, 1, 0.4), (1, 2, 0.4), (0, 2, 0.9)], 1.0);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 0, 1]);
        // Mirror: now 2's first neighbour scan... chain 0 -> 2 (0.4) -> prefers 0 back.
        let m = matrix(3, &[(0, 2, 0.4), (1, 2, 0.4), (0, 1, 0.9)], 1.0);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 1, 0]);
        // Chain walks 0 -> 1 (nearest at 0.3), from 1 the strict `<` finds 2 at 0.2.
        // Merges {1,2} first, then 0 joins at (0.3 + 0.45) / 2 = 0.375.
        let m = matrix(3, &[(0, 1, 0.3), (1, 2, 0.2), (0, 2, 0.45)], 1.0);
        let merges = average_linkage(m.clone());
        assert_eq!((merges[0].a, merges[0].b), (1, 2));
        assert!((merges[1].distance - 0.375).abs() < 1e-15);
        assert_eq!(cluster_distances(m, 0.5), vec![0, 0, 0]);
    }

    #[test]
    fn parallel_scan_equals_sequential_scan() {
        // Values from a small set, so the minimum is tied many times.
        let n = PARALLEL_SCAN + 300;
        let mut state = 99u64;
        let data: Vec<f64> = (0..n * (n - 1) / 2)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 33) % 7) as f64 / 8.0 + 0.125
            })
            .collect();
        let active: Vec<usize> = (0..n).filter(|i| i % 5 != 3).collect();
        for x in [0, 1, 17, n / 2, n - 2, n - 1] {
            let (m, first) = nearest(&data, n, x, &active);
            let mut best = (f64::INFINITY, usize::MAX);
            for &i in &active {
                if i != x && data[condensed_index(n, x, i)] < best.0 {
                    best = (data[condensed_index(n, x, i)], i);
                }
            }
            assert_eq!((m, first), best, "x = {x}");
        }
    }

    #[test]
    fn degenerate_sizes() {
        assert_eq!(
            cluster_distances(CondensedMatrix::filled(0, 1.0), 0.5),
            Vec::<usize>::new()
        );
        assert_eq!(
            cluster_distances(CondensedMatrix::filled(1, 1.0), 0.5),
            vec![0]
        );
        assert_eq!(repetition_penalties(&[0]), vec![1.0]);
        assert_eq!(repetition_penalties(&[]), Vec::<f64>::new());
        assert_eq!(
            repetition_penalties(&[0, 1, 0, 2]),
            vec![0.5, 0.25, 0.5, 0.25]
        );
    }

    #[test]
    fn questions_identical_and_empty() {
        let qs: Vec<String> = [
            "What is the sum of the first ten odd numbers?",
            "",
            "What is the sum of the first ten odd numbers?",
            "",
            "word",
            "word",
            "Find all real x such that x^2 = 4.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let labels = cluster_questions(&qs, DEFAULT_THRESHOLD);
        // Identical long questions cluster; empty strings (BLEU 0, distance 1) and
        // one-word duplicates (BLEU 0.178, distance 0.82) do not.
        assert_eq!(labels, vec![0, 1, 0, 2, 3, 4, 5]);
        let p = repetition_penalties(&labels);
        assert_eq!(p[0], 2.0 / 7.0);
        assert_eq!(p[1], 1.0 / 7.0);
    }
}
