//! `core.calendar`: one row per day from the first order to 400 days past the end of observation
//! (so forecasts have dates to join), with the periods reports group by and a holiday flag.
//!
//! Holidays are the public holidays most of Europe and the Americas share (New Year, Good Friday,
//! Easter Monday, 1 May, Christmas and Boxing Day); a company with other holidays maps its own
//! calendar into `raw` and joins that instead.

use std::sync::Arc;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use datafusion::arrow::array::{ArrayRef, BooleanArray, Date32Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use crate::engine::Warehouse;
use crate::layout::Layer;
use crate::refresh::RefreshError;

/// Days after the end of observation the calendar reaches.
const FUTURE_DAYS: i64 = 400;

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count from 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`], Howard Hinnant's `days_from_civil`); `month` 1-12.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Easter Sunday (anonymous Gregorian algorithm).
pub fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a valid date")
}

/// Whether `date` is one of the shared public holidays.
pub fn is_holiday(date: NaiveDate) -> bool {
    let easter = easter(date.year());
    matches!((date.month(), date.day()), (1, 1) | (5, 1) | (12, 25) | (12, 26))
        || date == easter - Duration::days(2)
        || date == easter + Duration::days(1)
}

/// The calendar's rows for `start..=end`.
pub fn calendar(start: NaiveDate, end: NaiveDate) -> RecordBatch {
    let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= end).collect();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let date32 = |d: NaiveDate| (d - epoch).num_days() as i32;
    let int = |f: &dyn Fn(&NaiveDate) -> i32| Arc::new(Int32Array::from_iter_values(days.iter().map(f))) as ArrayRef;
    let date = |f: &dyn Fn(&NaiveDate) -> NaiveDate| {
        Arc::new(Date32Array::from_iter_values(days.iter().map(|d| date32(f(d))))) as ArrayRef
    };
    let text =
        |f: &dyn Fn(&NaiveDate) -> String| Arc::new(StringArray::from_iter_values(days.iter().map(f))) as ArrayRef;
    let flag =
        |f: &dyn Fn(&NaiveDate) -> bool| Arc::new(BooleanArray::from_iter(days.iter().map(|d| Some(f(d))))) as ArrayRef;
    let schema = Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("year", DataType::Int32, false),
        Field::new("quarter", DataType::Int32, false),
        Field::new("month", DataType::Int32, false),
        Field::new("month_name", DataType::Utf8, false),
        Field::new("day_of_month", DataType::Int32, false),
        Field::new("day_of_week", DataType::Int32, false),
        Field::new("day_name", DataType::Utf8, false),
        Field::new("week_start", DataType::Date32, false),
        Field::new("iso_year", DataType::Int32, false),
        Field::new("iso_week", DataType::Int32, false),
        Field::new("month_start", DataType::Date32, false),
        Field::new("quarter_start", DataType::Date32, false),
        Field::new("fiscal_year", DataType::Int32, false),
        Field::new("fiscal_quarter", DataType::Int32, false),
        Field::new("is_weekend", DataType::Boolean, false),
        Field::new("is_holiday", DataType::Boolean, false),
    ]);
    let columns = vec![
        date(&|d| *d),
        int(&|d| d.year()),
        int(&|d| d.month0() as i32 / 3 + 1),
        int(&|d| d.month() as i32),
        text(&|d| d.format("%B").to_string()),
        int(&|d| d.day() as i32),
        int(&|d| d.weekday().number_from_monday() as i32),
        text(&|d| d.format("%A").to_string()),
        date(&|d| *d - Duration::days(i64::from(d.weekday().num_days_from_monday()))),
        int(&|d| d.iso_week().year()),
        int(&|d| d.iso_week().week() as i32),
        date(&|d| d.with_day(1).expect("day 1 exists")),
        date(&|d| NaiveDate::from_ymd_opt(d.year(), d.month0() / 3 * 3 + 1, 1).expect("valid")),
        // The fiscal year is the calendar year; the columns exist so that reports written against
        // them keep working when a company's fiscal year starts elsewhere.
        int(&|d| d.year()),
        int(&|d| d.month0() as i32 / 3 + 1),
        flag(&|d| matches!(d.weekday(), Weekday::Sat | Weekday::Sun)),
        flag(&|d| is_holiday(*d)),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).expect("columns match the schema")
}

/// Rebuild `core.calendar` when its range changed. Returns whether it was rebuilt and its rows.
pub(crate) async fn refresh_calendar(
    warehouse: &Warehouse,
    ctx: &SessionContext,
    first_order: Option<NaiveDate>,
    as_of: NaiveDate,
) -> Result<(bool, u64), RefreshError> {
    let first = first_order.unwrap_or(as_of - Duration::days(3 * 365));
    // Whole years, so the range (and the table) changes only when a year is added.
    let start = NaiveDate::from_ymd_opt(first.year(), 1, 1).expect("valid");
    let end_day = as_of + Duration::days(FUTURE_DAYS);
    let end = NaiveDate::from_ymd_opt(end_day.year(), 12, 31).expect("valid");
    let inputs = format!("calendar@{start}..{end}");
    let store = warehouse.store();
    let recorded = crate::refresh::recorded_inputs(warehouse, Layer::Core, "calendar").await?;
    let rows = (end - start).num_days() as u64 + 1;
    if recorded.as_deref() == Some(inputs.as_str()) {
        return Ok((false, rows));
    }
    let batch = calendar(start, end);
    store
        .replace(Layer::Core, "calendar", vec![batch], crate::refresh::metadata(&inputs))
        .await?;
    store
        .register(ctx, Layer::Core, "calendar", crate::store::AsOf::Latest)
        .await?;
    Ok((true, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_and_holidays() {
        assert_eq!(easter(2024), NaiveDate::from_ymd_opt(2024, 3, 31).unwrap());
        assert_eq!(easter(2025), NaiveDate::from_ymd_opt(2025, 4, 20).unwrap());
        assert!(is_holiday(NaiveDate::from_ymd_opt(2025, 4, 18).unwrap()));
        assert!(is_holiday(NaiveDate::from_ymd_opt(2025, 4, 21).unwrap()));
        assert!(!is_holiday(NaiveDate::from_ymd_opt(2025, 4, 22).unwrap()));
    }

    #[test]
    fn a_leap_year_has_366_days_and_weeks_start_on_monday() {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let batch = calendar(start, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
        assert_eq!(batch.num_rows(), 366);
        let week = batch.column(8).as_any().downcast_ref::<Date32Array>().unwrap();
        // 2024-01-03 is a Wednesday; its week starts on Monday 2024-01-01.
        assert_eq!(week.value_as_date(2), Some(start));
    }
}
