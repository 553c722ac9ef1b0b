#pragma once
// TrainingCurves: at the end of training, output_dir/training_curves.svg — the training and evaluation
// curves against the step, a picture any browser opens, with no other tool.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#endif

namespace trainpp {

namespace detail {

/// A named series of (step, value) points.
struct CurveSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

/// One chart: a title and the series drawn on its axes.
struct CurvePanel {
  std::string title;
  std::vector<CurveSeries> series;
};

[[nodiscard]] std::string xml_escape(std::string_view text);

/// The panels HF's log_history gives: the losses (training and evaluation), the learning rate, and
/// every other evaluation metric; speed and runtime entries are left out.
[[nodiscard]] std::vector<CurvePanel> curve_panels(const nlohmann::json& log_history);

/// Five round-ish tick values spanning [lo, hi].
[[nodiscard]] inline std::vector<double> ticks(double lo, double hi) {
  std::vector<double> out;
  for (int i = 0; i <= 4; ++i) out.push_back(lo + (hi - lo) * i / 4.0);
  return out;
}

}  // namespace detail

/// The SVG document for `log_history`: one chart per panel (losses, learning rate, gradient norm,
/// evaluation metrics), each with axes, tick labels, a legend and one polyline (with point markers)
/// per series. An empty history gives a picture that says so.
[[nodiscard]] std::string training_curves_svg(const nlohmann::json& log_history, std::string_view title = "training");

/// A built-in callback: at on_train_end the main process writes output_dir/training_curves.svg from
/// log_history (atomically, creating output_dir if needed).
struct TrainingCurves {
  static constexpr std::string_view file_name = "training_curves.svg";
  void on_train_end(const TrainingArguments& args, const TrainerState& state, TrainerControl&) const;
};

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::string xml_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

TRAINPP_INLINE std::vector<CurvePanel> curve_panels(const nlohmann::json& log_history) {
  std::map<std::string, CurveSeries> series;
  auto add = [&](const std::string& name, double step, const nlohmann::json& value) {
    if (!value.is_number()) return;
    const double v = value.get<double>();
    if (!std::isfinite(v)) return;
    auto& s = series[name];
    s.name = name;
    s.points.emplace_back(step, v);
  };
  for (const auto& entry : log_history) {
    if (!entry.is_object() || !entry.contains("step") || !entry.at("step").is_number()) continue;
    const double step = entry.at("step").get<double>();
    if (entry.contains("train_runtime")) continue;  // the end-of-training summary, not a point on a curve
    for (const auto& [key, value] : entry.items()) {
      if (key == "step" || key == "epoch" || key.ends_with("_runtime") || key.ends_with("_per_second")) continue;
      add(key, step, value);
    }
  }
  std::vector<CurvePanel> panels;
  CurvePanel losses{"loss", {}};
  for (const char* name : {"loss", "eval_loss"})
    if (series.contains(name)) losses.series.push_back(std::move(series.at(name))), series.erase(name);
  if (!losses.series.empty()) panels.push_back(std::move(losses));
  for (const char* name : {"learning_rate", "grad_norm"})
    if (series.contains(name)) {
      panels.push_back({name, {std::move(series.at(name))}});
      series.erase(name);
    }
  CurvePanel metrics{"evaluation metrics", {}};
  for (auto& [name, s] : series) metrics.series.push_back(std::move(s));
  if (!metrics.series.empty()) panels.push_back(std::move(metrics));
  return panels;
}

}  // namespace detail

TRAINPP_INLINE std::string training_curves_svg(const nlohmann::json& log_history, std::string_view title) {
  const auto panels = detail::curve_panels(log_history);
  constexpr double width = 900, panel_height = 250, margin_left = 86, margin_right = 250, margin_top = 34,
                   margin_bottom = 36;
  const double height = 40 + std::max<std::size_t>(panels.size(), 1) * panel_height;
  static constexpr std::array<const char*, 8> colors{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                     "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{3}</text>\n",
      width, height, margin_left, detail::xml_escape(title));
  if (panels.empty())
    svg += fmt::format("<text x=\"{}\" y=\"70\">nothing was logged</text>\n", margin_left);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const auto& panel = panels[p];
    const double top = 40 + p * panel_height + margin_top, bottom = 40 + (p + 1) * panel_height - margin_bottom;
    const double left = margin_left, right = width - margin_right;
    double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
    for (const auto& s : panel.series)
      for (const auto& [x, y] : s.points) {
        x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
        y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
      }
    if (x_hi <= x_lo) x_lo -= 1, x_hi += 1;
    if (y_hi <= y_lo) y_lo -= std::max(1e-12, std::abs(y_lo) * 0.1) , y_hi += std::max(1e-12, std::abs(y_hi) * 0.1);
    const double pad = (y_hi - y_lo) * 0.05;
    // Values that are all non-negative (a learning rate, a loss) keep the axis at or above zero.
    y_lo = y_lo >= 0 ? std::max(0.0, y_lo - pad) : y_lo - pad;
    y_hi += pad;
    auto sx = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * (right - left); };
    auto sy = [&](double y) { return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top); };

    svg += fmt::format("<g class=\"panel\" data-title=\"{}\">\n", detail::xml_escape(panel.title));
    svg += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>\n", left, top - 10,
                       detail::xml_escape(panel.title));
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", left, top,
                       right - left, bottom - top);
    for (const double t : detail::ticks(y_lo, y_hi)) {
      svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>"
                         "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5:.4g}</text>\n",
                         left, right, sy(t), left - 6, sy(t) + 4, t);
    }
    for (const double t : detail::ticks(x_lo, x_hi)) {
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.4g}</text>\n", sx(t), bottom + 16, t);
    }
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" fill=\"#555\">step</text>\n",
                       (left + right) / 2, bottom + 31);
    for (std::size_t i = 0; i < panel.series.size(); ++i) {
      const auto& s = panel.series[i];
      const char* color = colors[i % colors.size()];
      std::string points;
      for (const auto& [x, y] : s.points) points += fmt::format("{:.2f},{:.2f} ", sx(x), sy(y));
      if (!points.empty()) points.pop_back();
      svg += fmt::format("<polyline data-series=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>\n",
                         detail::xml_escape(s.name), color, points);
      for (const auto& [x, y] : s.points)
        svg += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"2.2\" fill=\"{}\"><title>{} = {:.6g} at step {:g}</title></circle>\n",
                           sx(x), sy(y), color, detail::xml_escape(s.name), y, x);
      const double ly = top + 14 + 18 * static_cast<double>(i);
      svg += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" stroke-width=\"3\"/>"
                         "<text x=\"{4}\" y=\"{5:.1f}\">{6} (last {7:.4g})</text>\n",
                         right + 12, right + 32, ly, color, right + 38, ly + 4, detail::xml_escape(s.name),
                         s.points.empty() ? 0.0 : s.points.back().second);
    }
    svg += "</g>\n";
  }
  svg += "</svg>\n";
  return svg;
}

TRAINPP_INLINE void TrainingCurves::on_train_end(const TrainingArguments& args, const TrainerState& state, TrainerControl&) const {
  if (!state.is_world_process_zero) return;
  const std::filesystem::path dir = args.output_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw error("cannot create directory {}: {}", dir.string(), ec.message());
  const auto title = fmt::format("{} — {} steps", args.run_name.value_or(args.output_dir), state.global_step);
  write_file_atomic(dir / file_name, training_curves_svg(state.log_history, title));
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
