//! Which points of a scatter plot to draw when there are many: a 30
//! repetition run at 10 000 probes/s has ~100 000 replies per repetition,
//! and one `<circle>` each would make a page of tens of megabytes.
//!
//! First, points that land on the same pixel with the same class are drawn
//! once (nothing visible is lost). If more than the budget remain, the
//! points marked important (replies around gaps and markers, slow replies)
//! are all kept, and of the others every `k`-th is drawn: an even sample
//! keeps the steady state's spread as it was (keeping each block's extremes
//! instead would draw two false bands at its edges).

use std::collections::BTreeMap;

/// One point in pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PixelPoint {
    /// Pixel column.
    pub x: i32,
    /// Pixel row (smaller is higher on the plot).
    pub y: i32,
    /// Drawn differently (e.g. prompt or slow reply): never merged across.
    pub class: u8,
    /// Kept whatever the budget (near a gap or a marker).
    pub important: bool,
}

/// What [`thin`] kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Thinned {
    /// Indices into the input of the points to draw, ascending.
    pub keep: Vec<usize>,
    /// Points dropped because an identical one was already drawn.
    pub same_pixel: usize,
    /// Of the unimportant points, every `step`-th is drawn (0: all were).
    pub step: usize,
}

/// Chooses at most about `budget` points to draw (important points are
/// all kept even beyond it, up to three quarters of it; past that they too
/// are taken every n-th).
pub(crate) fn thin(points: &[PixelPoint], budget: usize) -> Thinned {
    let budget = budget.max(4);
    // Pixel and class -> position in `unique` (looked up, never iterated).
    let mut seen: BTreeMap<(i32, i32, u8), usize> = BTreeMap::new();
    let mut unique: Vec<usize> = Vec::new();
    let mut important: Vec<bool> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match seen.get(&(p.x, p.y, p.class)) {
            // The drawn twin stands for this one, important if either is.
            Some(&pos) => important[pos] |= p.important,
            None => {
                seen.insert((p.x, p.y, p.class), unique.len());
                unique.push(i);
                important.push(p.important);
            }
        }
    }
    let same_pixel = points.len() - unique.len();
    if unique.len() <= budget {
        return Thinned {
            keep: unique,
            same_pixel,
            step: 0,
        };
    }
    let imp: Vec<usize> = unique
        .iter()
        .zip(&important)
        .filter(|(_, &b)| b)
        .map(|(&i, _)| i)
        .collect();
    let rest: Vec<usize> = unique
        .iter()
        .zip(&important)
        .filter(|(_, &b)| !b)
        .map(|(&i, _)| i)
        .collect();
    let imp_cap = budget * 3 / 4;
    let mut keep: Vec<usize> = if imp.len() > imp_cap {
        let step = imp.len().div_ceil(imp_cap);
        imp.iter().step_by(step).copied().collect()
    } else {
        imp
    };
    let room = budget.saturating_sub(keep.len()).max(1);
    let step = rest.len().div_ceil(room).max(1);
    keep.extend(rest.iter().step_by(step).copied());
    keep.sort_unstable();
    keep.dedup();
    Thinned {
        keep,
        same_pixel,
        step,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: i32, y: i32, important: bool) -> PixelPoint {
        PixelPoint {
            x,
            y,
            class: 0,
            important,
        }
    }

    #[test]
    fn same_pixel_is_drawn_once() {
        let pts = vec![pt(1, 1, false), pt(1, 1, false), pt(2, 1, false)];
        let t = thin(&pts, 100);
        assert_eq!(t.keep, vec![0, 2]);
        assert_eq!(t.same_pixel, 1);
        assert_eq!(t.step, 0);
    }

    #[test]
    fn over_budget_keeps_important_and_samples_the_rest_evenly() {
        // 10 000 distinct points, a few important ones.
        let mut pts: Vec<PixelPoint> = (0..10_000).map(|i| pt(i, 100 + i % 7, false)).collect();
        for p in pts.iter_mut().skip(9_000).take(50) {
            p.important = true;
        }
        let t = thin(&pts, 1_000);
        assert!(t.keep.len() <= 1_000, "{}", t.keep.len());
        assert!(
            (9_000..9_050).all(|i| t.keep.contains(&i)),
            "important kept"
        );
        assert_eq!(t.step, 11, "9 950 others in 950 places");
        // Evenly: every y value of the steady state is still drawn.
        for y in 100..107 {
            assert!(t.keep.iter().any(|&i| pts[i].y == y));
        }
        assert!(t.keep.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn deterministic() {
        let pts: Vec<PixelPoint> = (0..5_000)
            .map(|i| pt(i % 300, (i * 37) % 200, i % 11 == 0))
            .collect();
        assert_eq!(thin(&pts, 500), thin(&pts, 500));
    }
}
