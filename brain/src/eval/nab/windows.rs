//! Where each point of a series stands relative to its anomaly windows, and what a detection
//! there would be worth before the profile's weights are applied.

/// Points at the start of a series that are never scored: a detector needs time to learn.
/// NAB's rule: 15 % of the series, at most 750 points.
pub fn probation_len(n: usize) -> usize {
    (n * 15 / 100).min(750)
}

/// NAB's scaled sigmoid of a relative position: about +0.987 at a window's first point
/// (−1), 0 at its last (0), falling to −1 three window-lengths after it.
pub fn scaled_sigmoid(position: f64) -> f64 {
    if position >= 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * position).exp()) - 1.0
    }
}

/// What a detection at one point would count for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PointRole {
    /// In the probation period: not scored.
    Probation,
    /// Inside window `window` (numbered over the series' scored windows): a detection here
    /// earns `reward` × tp weight if it is the window's earliest; 1 at the window's first point.
    InWindow {
        /// The window, from 0.
        window: usize,
        /// In (0, 1].
        reward: f64,
    },
    /// Outside every window: a detection here adds `penalty` × fp weight; in [−1, 0), near
    /// 0 just after a window (a late but genuine alarm), −1 far from any.
    Outside {
        /// In [−1, 0).
        penalty: f64,
    },
}

/// Each point's role in one series, and how many windows are scored.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesLabels {
    /// One per point, in order.
    pub roles: Vec<PointRole>,
    /// Windows with at least one point after probation; one that lies wholly inside
    /// probation can be neither hit nor missed, as in NAB.
    pub windows: usize,
}

impl SeriesLabels {
    /// Labels a series whose points fall at `timestamps`, in file order, given its windows as
    /// inclusive `[start, end]` instants. A window runs from the first point at or after its
    /// start to the last point before the next one past its end (real series are not always
    /// monotonic: NAB's machine temperature steps back an hour once). One covering no point
    /// is ignored; overlapping ones are cut where the earlier ends.
    pub fn new(timestamps: &[i64], windows: &[(i64, i64)]) -> SeriesLabels {
        let n = timestamps.len();
        let mut spans: Vec<(usize, usize)> = windows
            .iter()
            .filter_map(|&(t1, t2)| {
                let left = timestamps.iter().position(|&t| t >= t1)?;
                let right = timestamps[left..]
                    .iter()
                    .position(|&t| t > t2)
                    .map_or(n, |k| left + k);
                (left < right).then(|| (left, right - 1))
            })
            .collect();
        spans.sort_unstable();
        let mut clipped: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (left, right) in spans {
            let left = match clipped.last() {
                Some(&(_, prev_right)) => left.max(prev_right + 1),
                None => left,
            };
            if left <= right {
                clipped.push((left, right));
            }
        }

        let probation = probation_len(n);
        let max_reward = scaled_sigmoid(-1.0);
        let mut roles = Vec::with_capacity(n);
        let mut next_span = 0;
        let mut previous: Option<(usize, usize)> = None;
        let mut scored_windows = 0;
        let mut current_id: Option<usize> = None;
        for i in 0..n {
            let inside = clipped
                .get(next_span)
                .filter(|&&(left, right)| left <= i && i <= right)
                .copied();
            let role = match inside {
                Some((left, right)) => {
                    let width = (right - left + 1) as f64;
                    let position = -((right - i + 1) as f64) / width;
                    let reward = scaled_sigmoid(position) / max_reward;
                    if i < probation {
                        PointRole::Probation
                    } else {
                        let id = *current_id.get_or_insert_with(|| {
                            scored_windows += 1;
                            scored_windows - 1
                        });
                        PointRole::InWindow { window: id, reward }
                    }
                }
                None if i < probation => PointRole::Probation,
                None => {
                    let position = match previous {
                        // A one-point window has no length to measure by: a point after it
                        // is as far as NAB can say (its own formula divides by zero).
                        Some((left, right)) => (i - right) as f64 / ((right - left).max(1) as f64),
                        None => 3.0,
                    };
                    PointRole::Outside {
                        penalty: scaled_sigmoid(position),
                    }
                }
            };
            roles.push(role);
            if let Some((left, right)) = inside
                && i == right
            {
                previous = Some((left, right));
                next_span += 1;
                current_id = None;
            }
        }
        SeriesLabels {
            roles,
            windows: scored_windows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn probation_is_fifteen_percent_capped_at_750() {
        assert_eq!(probation_len(0), 0);
        assert_eq!(probation_len(99), 14);
        assert_eq!(probation_len(100), 15);
        assert_eq!(probation_len(5000), 750);
        assert_eq!(probation_len(100_000), 750);
    }

    #[test]
    fn scaled_sigmoid_landmarks() {
        // 2σ(5) − 1 = tanh(2.5) at the window's first point, 0 at its end, −1 from 3 on.
        assert!(close(scaled_sigmoid(-1.0), 2.5f64.tanh()));
        assert!(close(scaled_sigmoid(-0.5), 1.25f64.tanh()));
        assert!(close(scaled_sigmoid(0.0), 0.0));
        assert!(close(scaled_sigmoid(1.0), -(2.5f64.tanh())));
        assert_eq!(scaled_sigmoid(3.0), -1.0);
        assert_eq!(scaled_sigmoid(1e9), -1.0);
    }

    #[test]
    fn roles_of_a_small_series() {
        // 20 points, probation 3; window [10, 13] (4 points).
        let ts: Vec<i64> = (0..20).collect();
        let labels = SeriesLabels::new(&ts, &[(10, 13)]);
        assert_eq!(labels.windows, 1);
        assert_eq!(labels.roles[2], PointRole::Probation);
        assert_eq!(labels.roles[3], PointRole::Outside { penalty: -1.0 });
        let PointRole::InWindow { window: 0, reward } = labels.roles[10] else {
            panic!("{:?}", labels.roles[10]);
        };
        assert!(close(reward, 1.0), "first point earns the full reward");
        let PointRole::InWindow { reward, .. } = labels.roles[13] else {
            panic!("{:?}", labels.roles[13]);
        };
        // Last point: position −1/4, σ-scaled and divided by the first point's value.
        assert!(close(reward, (0.625f64).tanh() / 2.5f64.tanh()));
        // Right after: distance 1 over (width − 1) = 3.
        let PointRole::Outside { penalty } = labels.roles[14] else {
            panic!("{:?}", labels.roles[14]);
        };
        assert!(close(penalty, -(5.0f64 / 6.0).tanh()));
        // Six points after the end: position 2, almost the full penalty.
        assert_eq!(
            labels.roles[19],
            PointRole::Outside {
                penalty: -(5.0f64.tanh())
            }
        );
    }

    #[test]
    fn windows_in_probation_or_covering_no_points_are_not_counted() {
        let ts: Vec<i64> = (0..100).map(|i| i * 10).collect();
        // probation 15 points = up to t 140.
        let labels = SeriesLabels::new(&ts, &[(0, 50), (500, 505), (901, 909), (700, 730)]);
        assert_eq!(labels.windows, 2, "{labels:?}");
        assert!(matches!(
            labels.roles[50],
            PointRole::InWindow { window: 0, .. }
        ));
        assert!(matches!(
            labels.roles[71],
            PointRole::InWindow { window: 1, .. }
        ));
        let single = SeriesLabels::new(&ts, &[(500, 500)]);
        let PointRole::InWindow { reward, .. } = single.roles[50] else {
            panic!()
        };
        assert!(close(reward, 1.0));
        assert!(
            matches!(single.roles[51], PointRole::Outside { penalty } if close(penalty, -(2.5f64.tanh())))
        );
    }
}
