//! The report's plots.

use std::fs;
use std::path::Path;

use anyhow::Result;

use crate::harness::Bench;

/// One line of a plot: its legend, colour and points.
type Series<'a> = (&'a str, plotters::style::RGBColor, Vec<(f64, f64)>);

/// Draws the two plots as PNGs.
pub(crate) fn plot(dir: &Path, b: &Bench) -> Result<()> {
    use plotters::prelude::*;
    fs::create_dir_all(dir)?;
    static FONT: &[u8] = include_bytes!("../../../guest-example/render/fonts/DejaVuSans-Bold.ttf");
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled font"))?;
    let (w, h) = (900u32, 520u32);

    let draw = |file: &str,
                title: &str,
                x_label: &str,
                y_label: &str,
                series: &[Series<'_>]|
     -> Result<()> {
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
            let (x_min, x_max) =
                xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
            let y_max = series
                .iter()
                .flat_map(|s| s.2.iter().map(|p| p.1))
                .fold(0.0, f64::max)
                * 1.15;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(80)
                .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max.max(1.0))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for (name, colour, points) in series {
                let colour = *colour;
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            root.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        let path = dir.join(file);
        let file = fs::File::create(&path)?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.write_header()?.write_image_data(&buffer)?;
        Ok(())
    };
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let green = RGBColor(44, 160, 44);
    let red = RGBColor(214, 39, 40);
    draw(
        "rows.png",
        "Scenes inserted per second, by rows per host call",
        "rows per call (1: create-scene, more: create-scenes), log scale",
        "rows / s",
        &[
            (
                "plugin",
                blue,
                b.rows_curve.iter().map(|r| (r.0, r.1)).collect(),
            ),
            (
                "native (StageSession::create_scene, measured alongside)",
                orange,
                b.rows_curve.iter().map(|r| (r.0, r.2)).collect(),
            ),
            (
                "raw SQLite, tuned, one transaction (the floor)",
                green,
                b.rows_curve.iter().map(|r| (r.0, r.3)).collect(),
            ),
        ],
    )?;
    draw(
        "chunks.png",
        "Artifact throughput by chunk size (write includes fsync and commit)",
        "chunk size in KiB, log scale",
        "MB / s",
        &[
            (
                "plugin write",
                blue,
                b.chunk_curve.iter().map(|c| (c.0, c.1)).collect(),
            ),
            (
                "native write",
                orange,
                b.chunk_curve.iter().map(|c| (c.0, c.2)).collect(),
            ),
            (
                "plugin read",
                green,
                b.chunk_curve.iter().map(|c| (c.0, c.3)).collect(),
            ),
            (
                "native read",
                red,
                b.chunk_curve.iter().map(|c| (c.0, c.4)).collect(),
            ),
        ],
    )?;
    Ok(())
}
