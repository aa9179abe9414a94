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

// An upload larger than the server takes is stopped here, with the sizes, before it is sent
// (the server refuses it too: 413).
function sizeText(bytes) {
  return bytes < 1048576 ? (bytes / 1024).toFixed(1) + " KiB" : (bytes / 1048576).toFixed(1) + " MiB";
}
const uploadForm = document.getElementById("upload-form");
if (uploadForm) {
  uploadForm.addEventListener("submit", (event) => {
    const limit = Number(uploadForm.dataset.maxBytes);
    const files = [...uploadForm.querySelectorAll("input[type=file]")].flatMap((i) => [...i.files]);
    const total = files.reduce((sum, f) => sum + f.size, 0);
    const problem = document.getElementById("upload-problem");
    if (total <= limit) {
      problem.hidden = true;
      return;
    }
    event.preventDefault();
    const size = files.length === 1 ? `${files[0].name} is ${sizeText(total)}`
      : `${files.map((f) => `${f.name} (${sizeText(f.size)})`).join(" and ")} add up to ` +
        sizeText(total);
    problem.textContent = `Too large: ${size}, and this server ` +
      `takes at most ${sizeText(limit)} per upload (setting max_upload_bytes). Nothing was ` +
      "sent: choose a smaller file, or ask an admin to raise the limit.";
    problem.hidden = false;
    document.getElementById("artifact").focus();
  });
}

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
