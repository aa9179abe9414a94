// The console's one script: copy buttons and the dashboard's charts (Chart.js, vendored).
"use strict";

document.querySelectorAll("button.copy").forEach((button) => {
  button.addEventListener("click", async () => {
    const code = document.getElementById(button.dataset.target);
    await navigator.clipboard.writeText(code.textContent);
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
});

function colours() {
  const style = getComputedStyle(document.documentElement);
  const get = (name) => style.getPropertyValue(name).trim();
  return { fg: get("--fg"), line: get("--line"),
    series: [get("--arm"), get("--canary"), get("--fallback"), get("--shadow"), get("--ok"), get("--bad")] };
}

function drawCharts() {
  const source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  const charts = JSON.parse(source.textContent);
  const c = colours();
  Chart.defaults.color = c.fg;
  Chart.defaults.borderColor = c.line;
  Chart.defaults.animation = false;
  for (const spec of charts) {
    const canvas = document.getElementById(spec.id);
    if (!canvas) continue;
    const datasets = spec.series.map((s, i) => ({
      label: s.label, data: s.data, borderColor: c.series[i % c.series.length],
      backgroundColor: c.series[i % c.series.length], pointRadius: 2, borderWidth: 2,
      spanGaps: true,
    }));
    new Chart(canvas, {
      type: spec.type, data: { labels: spec.labels, datasets },
      options: { responsive: true, maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: !!spec.unit, text: spec.unit } } } },
    });
  }
}
drawCharts();
