//! # chiso-chart: the charts of the weekly review
//!
//! A chart is described by plain data ([`Chart`]: labels and numbers, already
//! formatted for people) and drawn by plotters as SVG (for pages, where the
//! text stays text) or PNG (for downloads and slides). The same drawing code
//! serves both backends.
//!
//! Text is drawn with the bundled DejaVu Sans (full Vietnamese coverage,
//! Bitstream Vera licence, see `fonts/LICENSE-DejaVu.txt`), never a system
//! font, and every label is normalised to NFC first: the precomposed letters
//! of Vietnamese (ế, ữ, ộ) are single glyphs in the font, so NFC text needs no
//! shaping. In SVG the family is named `chiso-sans`, which the pages declare
//! with `@font-face` from [`FONT`].
//!
//! Architecture invariant: this crate sees labels and numbers only; it never
//! sees DataFusion, Arrow or HTTP types.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use unicode_normalization::UnicodeNormalization;

/// The bundled font (DejaVu Sans), served to browsers for the SVG charts.
pub static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// Its bold face, for documents (headings, table headers); same licence.
pub static FONT_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// The font family the charts name; the pages map it to [`FONT`].
pub const FONT_FAMILY: &str = "chiso-sans, DejaVu Sans, sans-serif";

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing the chart: {0}")]
    Draw(String),
    #[error("chart size {width}×{height} is outside 16–4000 pixels")]
    Size { width: u32, height: u32 },
}

/// How a value reads against its target: the colour of a bar, tile or cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    #[default]
    Neutral,
}

/// The product's colours, in one place: the charts draw with them, the PDF
/// and HTML documents write them, and the pages' stylesheet states them
/// (`chiso-server/assets/chiso.css`, checked by a test of the server).
pub mod palette {
    /// A colour as `#rrggbb`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Colour(pub u8, pub u8, pub u8);

    impl Colour {
        pub fn hex(self) -> String {
            format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
        }
    }

    /// Text.
    pub const INK: Colour = Colour(0x22, 0x2b, 0x36);
    /// Secondary text.
    pub const MUTED: Colour = Colour(0x5f, 0x6b, 0x7a);
    /// Rules and grid lines.
    pub const LINE: Colour = Colour(0xe3, 0xe7, 0xec);
    /// Links, the neutral bar and stripe.
    pub const ACCENT: Colour = Colour(0x1f, 0x5f, 0x99);
    pub const GOOD: Colour = Colour(0x2e, 0x7d, 0x32);
    /// A warning as a fill (bars, stripes).
    pub const WARN: Colour = Colour(0xef, 0x9b, 0x0f);
    /// A warning as text: darker, to read on white.
    pub const WARN_TEXT: Colour = Colour(0xa1, 0x5c, 0x00);
    pub const BAD: Colour = Colour(0xc6, 0x28, 0x28);
    /// A target line.
    pub const TARGET: Colour = Colour(0x8a, 0x94, 0xa3);
    /// Successive series and parts.
    pub const SERIES: [Colour; 6] = [
        ACCENT,
        Colour(0xd9, 0x6c, 0x06),
        GOOD,
        Colour(0x8e, 0x24, 0xaa),
        BAD,
        Colour(0x00, 0x83, 0x8f),
    ];
}

use palette::Colour;

const fn rgb(colour: Colour) -> RGBColor {
    RGBColor(colour.0, colour.1, colour.2)
}

impl Tone {
    /// The tone as a fill (bars, stripes, tiles).
    pub fn fill(self) -> Colour {
        match self {
            Tone::Good => palette::GOOD,
            Tone::Warn => palette::WARN,
            Tone::Bad => palette::BAD,
            Tone::Neutral => palette::ACCENT,
        }
    }

    /// The tone as text on white; `None` for plain text.
    pub fn text(self) -> Option<Colour> {
        match self {
            Tone::Good => Some(palette::GOOD),
            Tone::Warn => Some(palette::WARN_TEXT),
            Tone::Bad => Some(palette::BAD),
            Tone::Neutral => None,
        }
    }

    fn colour(self) -> RGBColor {
        rgb(self.fill())
    }

    /// The CSS class the pages colour with.
    pub fn css_class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Neutral => "neutral",
        }
    }
}

/// Named values along the categories of a chart (`None` is a gap).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// A reference line (a target rate) and the words drawn beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub value: f64,
    /// "Mục tiêu 95" — already in the reader's language.
    pub label: String,
}

/// One bar of a horizontal bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
    pub tone: Tone,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Lines over ordered categories (weeks, months).
    Line {
        categories: Vec<String>,
        series: Vec<Series>,
        /// A horizontal reference line, such as a target rate.
        target: Option<Target>,
    },
    /// Horizontal bars, first on top: rankings.
    Bar {
        bars: Vec<Bar>,
        target: Option<Target>,
        /// The value axis; `None` fits the bars.
        range: Option<(f64, f64)>,
    },
    /// Vertical bars of stacked parts (early, on time, late).
    StackedBar {
        categories: Vec<String>,
        parts: Vec<Series>,
    },
    /// Rows × columns of coloured cells (ward × week), coloured from `low`
    /// (red) to `high` (green).
    Heatmap {
        columns: Vec<String>,
        rows: Vec<String>,
        /// `values[row][column]`.
        values: Vec<Vec<Option<f64>>>,
        low: f64,
        high: f64,
    },
    /// A line without axes, for a table cell.
    Sparkline { values: Vec<Option<f64>> },
}

impl Chart {
    /// A size that fits the content when the caller has no preference:
    /// rankings and heatmaps grow with their rows.
    /// A long bar chart cut into charts of at most `per_chart` bars on one
    /// shared scale (side by side on a printed page); other charts as they are.
    pub fn split_bars(&self, per_chart: usize) -> Vec<Chart> {
        let Chart::Bar {
            bars,
            target,
            range,
        } = self
        else {
            return vec![self.clone()];
        };
        let shared = range.unwrap_or_else(|| {
            value_range(
                bars.iter().filter_map(|b| b.value.as_ref()),
                target.as_ref().map(|t| t.value),
            )
        });
        bars.chunks(per_chart.max(1))
            .map(|chunk| Chart::Bar {
                bars: chunk.to_vec(),
                target: target.clone(),
                range: Some(shared),
            })
            .collect()
    }

    pub fn natural_size(&self) -> (u32, u32) {
        match self {
            Chart::Bar { bars, .. } => (720, 74 + 18 * bars.len().max(1) as u32),
            Chart::Heatmap { rows, .. } => (760, 90 + 14 * rows.len().max(1) as u32),
            Chart::Sparkline { .. } => (120, 28),
            Chart::Line { .. } | Chart::StackedBar { .. } => (720, 320),
        }
    }

    /// The chart as an SVG document.
    pub fn svg(&self, width: u32, height: u32) -> Result<String, ChartError> {
        check_size(width, height)?;
        register_font();
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        Ok(out)
    }

    /// The chart as a PNG image.
    pub fn png(&self, width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
        check_size(width, height)?;
        register_font();
        let mut pixels = vec![0u8; width as usize * height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(draw_error)?;
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ChartError::Draw(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| ChartError::Draw(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| ChartError::Draw(e.to_string()))?;
        Ok(out)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        root.fill(&WHITE).map_err(draw_error)?;
        match self {
            Chart::Line {
                categories,
                series,
                target,
            } => draw_line(root, categories, series, target.as_ref()),
            Chart::Bar {
                bars,
                target,
                range,
            } => draw_bars(root, bars, target.as_ref(), *range),
            Chart::StackedBar { categories, parts } => draw_stacked(root, categories, parts),
            Chart::Heatmap {
                columns,
                rows,
                values,
                low,
                high,
            } => draw_heatmap(root, columns, rows, values, *low, *high),
            Chart::Sparkline { values } => draw_sparkline(root, values),
        }
    }
}

fn check_size(width: u32, height: u32) -> Result<(), ChartError> {
    let valid = 16..=4000;
    if valid.contains(&width) && valid.contains(&height) {
        Ok(())
    } else {
        Err(ChartError::Size { width, height })
    }
}

fn draw_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> ChartError {
    ChartError::Draw(error.to_string())
}

fn register_font() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // The bundled bytes are a valid TrueType font (a test draws with it);
        // were they not, text would be missing and the tests would say so.
        let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT);
    });
}

/// Labels in NFC: decomposed input (e + combining marks) becomes the
/// precomposed letters the font draws.
pub fn nfc(text: &str) -> String {
    text.nfc().collect()
}

fn font(size: f64) -> TextStyle<'static> {
    (FontFamily::Name(FONT_FAMILY), size)
        .into_font()
        .color(&TEXT)
}

const TEXT: RGBColor = rgb(palette::INK);
const GRID: RGBColor = rgb(palette::LINE);
const TARGET: RGBColor = rgb(palette::TARGET);

/// The colours of successive series and parts.
const PALETTE: [RGBColor; 6] = [
    rgb(palette::SERIES[0]),
    rgb(palette::SERIES[1]),
    rgb(palette::SERIES[2]),
    rgb(palette::SERIES[3]),
    rgb(palette::SERIES[4]),
    rgb(palette::SERIES[5]),
];

/// The y range of values, padded, starting at zero for non-negative data.
fn value_range<'a>(values: impl Iterator<Item = &'a f64>, extra: Option<f64>) -> (f64, f64) {
    let (mut low, mut high) = values
        .copied()
        .chain(extra)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if low >= 0.0 {
        low = 0.0;
    }
    if high <= low {
        high = low + 1.0;
    }
    (low, high + (high - low) * 0.05)
}

/// The y range of a line chart: zero-based like [`value_range`] unless the
/// values keep far from zero (rates between 85 and 100), where a zero-based
/// axis would flatten every movement; then it starts at a round number
/// below the lowest value, and the chart marks the axis as cut. Returns
/// the range and whether it was cut.
fn fitted_range<'a>(
    values: impl Iterator<Item = &'a f64>,
    extra: Option<f64>,
) -> ((f64, f64), bool) {
    let values: Vec<f64> = values.copied().chain(extra).collect();
    let (low, high) = value_range(values.iter(), None);
    let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
    if low != 0.0 || !lowest.is_finite() || lowest < 0.5 * high {
        return ((low, high), false);
    }
    let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let spread = (highest - lowest).max(1.0);
    let step = if spread > 20.0 {
        10.0
    } else if spread > 4.0 {
        5.0
    } else {
        1.0
    };
    let start = ((lowest - spread * 0.15) / step).floor() * step;
    ((start.max(0.0), high), start > 0.0)
}

/// Every n-th category label, so labels never overlap.
fn label_step(count: usize, width: u32, label_px: u32) -> usize {
    let fit = (width / label_px.max(1)).max(1) as usize;
    count.div_ceil(fit).max(1)
}

fn segment_label(labels: &[String], value: &SegmentValue<usize>, step: usize) -> String {
    match value {
        SegmentValue::CenterOf(i) if i % step == 0 => {
            labels.get(*i).map(|l| nfc(l)).unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// A chart context over categories (x) and values (y).
type CategoryChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<
        plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>,
        plotters::coord::types::RangedCoordf64,
    >,
>;

/// The axes of line and stacked charts: category labels thinned so they
/// never overlap, values from `low` to `high`, light horizontal grid.
fn category_axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    categories: &[String],
    low: f64,
    high: f64,
) -> Result<CategoryChart<'a, DB>, ChartError> {
    let count = categories.len().max(1);
    let (width, _) = root.dim_in_pixel();
    let step = label_step(count, width.saturating_sub(60), 70);
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d((0..count).into_segmented(), low..high)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(TARGET)
        .x_labels(count)
        .x_label_formatter(&|v| segment_label(categories, v, step))
        .y_label_formatter(&|v| trim_number(*v))
        .label_style(font(12.0))
        .draw()
        .map_err(draw_error)?;
    Ok(chart)
}

fn draw_line<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    categories: &[String],
    series: &[Series],
    target: Option<&Target>,
) -> Result<(), ChartError> {
    let ((low, high), cut) = fitted_range(
        series.iter().flat_map(|s| s.values.iter().flatten()),
        target.map(|t| t.value),
    );
    let count = categories.len().max(1);
    let legend: Vec<(String, RGBColor)> = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    let plot = match series.len() > 1 {
        true => beside_legend(root, &legend, LegendMark::Line)?,
        false => root.clone(),
    };
    let mut chart = category_axes(&plot, categories, low, high)?;
    if let Some(target) = target {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (SegmentValue::Exact(0), target.value),
                    (SegmentValue::Exact(count), target.value),
                ],
                TARGET.stroke_width(1),
            )))
            .map_err(draw_error)?;
        // At the right end, above the line, where the latest points are
        // read against it.
        let label = nfc(&target.label);
        let (x, y) = chart.backend_coord(&(SegmentValue::Exact(count), target.value));
        let width = 7 * label.chars().count() as i32;
        plot.draw_text(&label, &font(11.0), (x - width - 4, y - 15))
            .map_err(draw_error)?;
    }
    if cut {
        // The axis does not start at zero: say so where it starts.
        let (x, y) = chart.backend_coord(&(SegmentValue::Exact(0), low));
        plot.draw_text("≈", &font(14.0), (x - 6, y - 10))
            .map_err(draw_error)?;
    }
    for (index, line) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        // A gap (no denominator that week) breaks the line instead of
        // pretending to be zero.
        let mut runs: Vec<Vec<(SegmentValue<usize>, f64)>> = vec![Vec::new()];
        for (i, value) in line.values.iter().enumerate() {
            match value {
                Some(v) => runs
                    .last_mut()
                    .map(|run| run.push((SegmentValue::CenterOf(i), *v)))
                    .unwrap_or_default(),
                None => runs.push(Vec::new()),
            }
        }
        chart
            .draw_series(
                runs.into_iter()
                    .filter(|run| !run.is_empty())
                    .map(|run| PathElement::new(run, colour.stroke_width(2))),
            )
            .map_err(draw_error)?;
        chart
            .draw_series(line.values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| Circle::new((SegmentValue::CenterOf(i), v), 2, colour.filled()))
            }))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy)]
enum LegendMark {
    Line,
    Block,
}

/// Draws `entries` in a strip under `root`, outside the plot, so a legend
/// never covers the latest point or bar; returns the area left for the plot.
fn beside_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
    mark: LegendMark,
) -> Result<DrawingArea<DB, Shift>, ChartError> {
    const ROW: u32 = 20;
    let (width, height) = root.dim_in_pixel();
    // Entries flow left to right, wrapping into as many rows as they need.
    let widths: Vec<u32> = entries
        .iter()
        .map(|(name, _)| 30 + 7 * nfc(name).chars().count() as u32)
        .collect();
    let mut rows = 1;
    let mut x = 60;
    for w in &widths {
        if x + w > width && x > 60 {
            rows += 1;
            x = 60;
        }
        x += w;
    }
    let strip = (rows * ROW + 6).min(height / 3);
    let (plot, legend) = root.split_vertically(height.saturating_sub(strip));
    let (mut x, mut y) = (60i32, 4i32);
    for ((name, colour), w) in entries.iter().zip(&widths) {
        if x + *w as i32 > width as i32 && x > 60 {
            x = 60;
            y += ROW as i32;
        }
        let middle = y + 8;
        match mark {
            LegendMark::Line => legend
                .draw(&PathElement::new(
                    vec![(x, middle), (x + 18, middle)],
                    colour.stroke_width(2),
                ))
                .map_err(draw_error)?,
            LegendMark::Block => legend
                .draw(&Rectangle::new(
                    [(x + 4, middle - 5), (x + 14, middle + 5)],
                    colour.filled(),
                ))
                .map_err(draw_error)?,
        }
        legend
            .draw_text(&nfc(name), &font(12.0), (x + 24, y + 1))
            .map_err(draw_error)?;
        x += *w as i32;
    }
    Ok(plot)
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bars: &[Bar],
    target: Option<&Target>,
    range: Option<(f64, f64)>,
) -> Result<(), ChartError> {
    let (low, high) = range.unwrap_or_else(|| {
        value_range(
            bars.iter().filter_map(|b| b.value.as_ref()),
            target.map(|t| t.value),
        )
    });
    // Room after the longest bar for its value.
    let high = high + (high - low) * 0.08;
    let count = bars.len().max(1);
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    // The first bar on top: segments count from the bottom.
    let row = |i: usize| count - 1 - i;
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        // Room above the bars for the target's label.
        .margin_top(24)
        .x_label_area_size(24)
        .y_label_area_size(190)
        .build_cartesian_2d(low..high, (0..count).into_segmented())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(TARGET)
        .y_labels(count)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i < count => nfc(&labels[row(*i)]),
            _ => String::new(),
        })
        .x_label_formatter(&|v| trim_number(*v))
        .label_style(font(11.0))
        .draw()
        .map_err(draw_error)?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, bar)| {
            let value = bar.value?;
            let r = row(i);
            let mut rect = Rectangle::new(
                [
                    (low.max(0.0), SegmentValue::Exact(r)),
                    (value, SegmentValue::Exact(r + 1)),
                ],
                bar.tone.colour().filled(),
            );
            rect.set_margin(2, 2, 0, 0);
            Some(rect)
        }))
        .map_err(draw_error)?;
    // Each bar's value at its end: bars that look alike still read apart.
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, bar)| {
            let value = bar.value?;
            Some(Text::new(
                value_label(value),
                (value, SegmentValue::CenterOf(row(i))),
                font(10.0).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
        }))
        .map_err(draw_error)?;
    if let Some(target) = target {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (target.value, SegmentValue::Exact(0)),
                    (target.value, SegmentValue::Exact(count)),
                ],
                TEXT.stroke_width(1),
            )))
            .map_err(draw_error)?;
        let (x, y) = chart.backend_coord(&(target.value, SegmentValue::Exact(count)));
        root.draw_text(&nfc(&target.label), &font(10.0), (x + 3, (y - 16).max(1)))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// A bar's value as written at its end: up to two decimals, Vietnamese.
fn value_label(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    group_thousands(text)
}

fn draw_stacked<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    categories: &[String],
    parts: &[Series],
) -> Result<(), ChartError> {
    let count = categories.len().max(1);
    let totals: Vec<f64> = (0..count)
        .map(|i| {
            parts
                .iter()
                .filter_map(|p| p.values.get(i).copied().flatten())
                .sum()
        })
        .collect();
    let (_, high) = value_range(totals.iter(), None);
    let legend: Vec<(String, RGBColor)> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), stacked_colour(i, parts.len())))
        .collect();
    let plot = beside_legend(root, &legend, LegendMark::Block)?;
    let mut chart = category_axes(&plot, categories, 0.0, high)?;
    let mut base = vec![0.0; count];
    for (index, part) in parts.iter().enumerate() {
        let colour = stacked_colour(index, parts.len());
        let rects: Vec<_> = (0..count)
            .filter_map(|i| {
                let value = part.values.get(i).copied().flatten()?;
                let bottom = base[i];
                base[i] += value;
                let mut rect = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), bottom),
                        (SegmentValue::Exact(i + 1), bottom + value),
                    ],
                    colour.filled(),
                );
                rect.set_margin(0, 0, 3, 3);
                Some(rect)
            })
            .collect();
        chart.draw_series(rects).map_err(draw_error)?;
    }
    Ok(())
}

/// Early, on time, late read green, blue, red; other stacks use the palette.
fn stacked_colour(index: usize, parts: usize) -> RGBColor {
    if parts == 3 {
        [Tone::Good, Tone::Neutral, Tone::Bad][index].colour()
    } else {
        PALETTE[index % PALETTE.len()]
    }
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    columns: &[String],
    rows: &[String],
    values: &[Vec<Option<f64>>],
    low: f64,
    high: f64,
) -> Result<(), ChartError> {
    let (ncols, nrows) = (columns.len().max(1), rows.len().max(1));
    let (width, _) = root.dim_in_pixel();
    let step = label_step(ncols, width.saturating_sub(200), 64);
    let row = |i: usize| nrows - 1 - i;
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(170)
        .build_cartesian_2d((0..ncols).into_segmented(), (0..nrows).into_segmented())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_style(TARGET)
        .x_labels(ncols)
        .y_labels(nrows)
        .x_label_formatter(&|v| segment_label(columns, v, step))
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if *i < nrows => {
                rows.get(row(*i)).map(|l| nfc(l)).unwrap_or_default()
            }
            _ => String::new(),
        })
        .label_style(font(10.0))
        .draw()
        .map_err(draw_error)?;
    let cells = values.iter().enumerate().flat_map(|(r, line)| {
        line.iter().enumerate().map(move |(c, value)| {
            let colour = match value {
                Some(v) => scale_colour(*v, low, high),
                None => GRID,
            };
            let mut rect = Rectangle::new(
                [
                    (SegmentValue::Exact(c), SegmentValue::Exact(row(r))),
                    (SegmentValue::Exact(c + 1), SegmentValue::Exact(row(r) + 1)),
                ],
                colour.filled(),
            );
            rect.set_margin(1, 0, 1, 0);
            rect
        })
    });
    chart.draw_series(cells).map_err(draw_error)?;
    Ok(())
}

/// Red at `low`, amber halfway, green at `high`.
fn scale_colour(value: f64, low: f64, high: f64) -> RGBColor {
    let t = if high > low {
        ((value - low) / (high - low)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let (bad, warn, good) = (Tone::Bad.colour(), Tone::Warn.colour(), Tone::Good.colour());
    let mix = |a: RGBColor, b: RGBColor, t: f64| {
        let channel = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
        RGBColor(channel(a.0, b.0), channel(a.1, b.1), channel(a.2, b.2))
    };
    if t < 0.5 {
        mix(bad, warn, t * 2.0)
    } else {
        mix(warn, good, (t - 0.5) * 2.0)
    }
}

fn draw_sparkline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    values: &[Option<f64>],
) -> Result<(), ChartError> {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let (low, high) = known
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    let (low, high) = if low.is_finite() && high > low {
        (low, high)
    } else if low.is_finite() {
        (low - 1.0, high + 1.0)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(root)
        .margin(3)
        .build_cartesian_2d(0..values.len().max(2) - 1, low..high)
        .map_err(draw_error)?;
    let colour = PALETTE[0];
    let points = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)));
    chart
        .draw_series(std::iter::once(PathElement::new(
            points.collect::<Vec<_>>(),
            colour.stroke_width(1),
        )))
        .map_err(draw_error)?;
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.map(|v| (i, v)))
    {
        chart
            .draw_series(std::iter::once(Circle::new((i, v), 2, colour.filled())))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// Axis numbers without trailing zeros, the Vietnamese way: 8.000, 97,5.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.1}");
    group_thousands(text.strip_suffix(".0").unwrap_or(&text))
}

/// `1234.5` (Rust's way) as `1.234,5`.
fn group_thousands(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    match fraction.is_empty() {
        true => format!("{sign}{grouped}"),
        false => format!("{sign}{grouped},{fraction}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weeks() -> Vec<String> {
        (27..=31).map(|w| format!("T{w}")).collect()
    }

    #[test]
    fn every_kind_draws_as_svg_and_png() {
        let charts = [
            Chart::Line {
                categories: weeks(),
                series: vec![Series {
                    name: "Đúng hạn".into(),
                    values: vec![Some(91.0), None, Some(95.5), Some(97.0), Some(96.0)],
                }],
                target: Some(Target {
                    value: 95.0,
                    label: "Mục tiêu 95".into(),
                }),
            },
            Chart::Bar {
                bars: vec![
                    Bar {
                        label: "Phường Ninh Kiều".into(),
                        value: Some(98.0),
                        tone: Tone::Good,
                    },
                    Bar {
                        label: "Xã Thới Lai".into(),
                        value: None,
                        tone: Tone::Neutral,
                    },
                ],
                target: Some(Target {
                    value: 95.0,
                    label: "Mục tiêu 95".into(),
                }),
                range: None,
            },
            Chart::StackedBar {
                categories: weeks(),
                parts: ["Sớm hạn", "Đúng hạn", "Trễ hạn"]
                    .iter()
                    .map(|name| Series {
                        name: (*name).into(),
                        values: vec![Some(3.0); 5],
                    })
                    .collect(),
            },
            Chart::Heatmap {
                columns: weeks(),
                rows: vec!["Phường Cái Khế".into(), "Xã Phong Điền".into()],
                values: vec![
                    vec![Some(80.0); 5],
                    vec![None, Some(100.0), None, None, None],
                ],
                low: 80.0,
                high: 100.0,
            },
            Chart::Sparkline {
                values: vec![Some(1.0), Some(3.0), None, Some(2.0)],
            },
        ];
        for chart in charts {
            let (width, height) = chart.natural_size();
            let svg = chart.svg(width, height).expect("svg");
            assert!(svg.starts_with("<svg"), "{chart:?}");
            let png = chart.png(width, height).expect("png");
            assert_eq!(&png[1..4], b"PNG", "{chart:?}");
        }
    }

    #[test]
    fn labels_are_nfc_and_name_the_bundled_font() {
        // "Ninh Kiều" with the ề decomposed into e + combining circumflex + grave.
        let decomposed = "Ninh Kie\u{0302}\u{0300}u";
        let chart = Chart::Bar {
            bars: vec![Bar {
                label: decomposed.into(),
                value: Some(1.0),
                tone: Tone::Good,
            }],
            target: None,
            range: None,
        };
        let svg = chart.svg(400, 100).expect("svg");
        assert!(svg.contains("Ninh Kiều"), "{svg}");
        assert!(!svg.contains('\u{0300}'));
        assert!(svg.contains("chiso-sans"));
    }

    #[test]
    fn text_is_drawn_with_the_bundled_font() {
        // The same chart with and without a label: the label must put ink on
        // the PNG, which it cannot if the font failed to load.
        let bar = |label: &str| Chart::Bar {
            bars: vec![Bar {
                label: label.into(),
                value: Some(1.0),
                tone: Tone::Good,
            }],
            target: None,
            range: None,
        };
        let ink = |png: Vec<u8>| png.len();
        let plain = ink(bar("").png(400, 100).expect("png"));
        let labelled = ink(bar("Phường Tân An").png(400, 100).expect("png"));
        assert!(labelled > plain + 200, "{plain} vs {labelled}");
    }

    #[test]
    fn sizes_are_bounded() {
        let chart = Chart::Sparkline { values: vec![] };
        assert!(matches!(chart.svg(0, 10), Err(ChartError::Size { .. })));
        assert!(matches!(chart.png(5000, 10), Err(ChartError::Size { .. })));
    }

    #[test]
    fn axis_numbers_and_values_read_the_vietnamese_way() {
        assert_eq!(trim_number(8000.0), "8.000");
        assert_eq!(trim_number(97.5), "97,5");
        assert_eq!(trim_number(-1200.0), "-1.200");
        assert_eq!(value_label(88.4), "88,4");
        assert_eq!(value_label(1234.5678), "1.234,57");
    }

    #[test]
    fn rates_far_from_zero_get_a_fitted_axis() {
        let rates = [96.0, 98.5, 91.2];
        let ((low, high), cut) = fitted_range(rates.iter(), Some(95.0));
        assert!(
            cut && low > 80.0 && low <= 91.2 && high > 98.5,
            "{low}..{high}"
        );
        let counts = [3.0, 250.0];
        let ((low, _), cut) = fitted_range(counts.iter(), None);
        assert!(!cut && low == 0.0);
    }

    #[test]
    fn heat_runs_from_red_to_green() {
        assert_eq!(scale_colour(0.0, 0.0, 100.0), Tone::Bad.colour());
        assert_eq!(scale_colour(50.0, 0.0, 100.0), Tone::Warn.colour());
        assert_eq!(scale_colour(100.0, 0.0, 100.0), Tone::Good.colour());
        assert_eq!(trim_number(95.0), "95");
        assert_eq!(trim_number(97.5), "97,5");
    }
}
