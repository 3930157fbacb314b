package store

// Interim fleet-wide queries of the web UI's dashboard (issue 19): part 2's
// API (issue 18) answers every per-app, per-machine and list view the pages
// need, but has no fleet-wide time series or distinct-user and machine counts
// yet. These read part 2's rollups (roll_device, roll_app_user) and are used by
// console/ui/interim.go only; when the API gains them, this file goes.

import "context"

// UIFleetSeries sums every device's traffic per bucket of the period.
func (s *Store) UIFleetSeries(ctx context.Context, p Period) ([]Bucket, error) {
	return queryAll(ctx, s, scanBucket, "SELECT bucket, "+sumCols("")+" FROM roll_device WHERE "+inPeriod+" GROUP BY bucket ORDER BY bucket", p.args()...)
}

// UIFleetCounts counts the distinct users and the machines with traffic
// in the period.
func (s *Store) UIFleetCounts(ctx context.Context, p Period) (users, machines int64, err error) {
	if err = s.FoldRollups(ctx); err != nil {
		return
	}
	if err = s.queryRow(ctx, "SELECT COUNT(DISTINCT user_name) FROM roll_app_user WHERE "+inPeriod, p.args()...).Scan(&users); err != nil {
		return
	}
	err = s.queryRow(ctx, "SELECT COUNT(DISTINCT device_id) FROM roll_device WHERE "+inPeriod, p.args()...).Scan(&machines)
	return
}
