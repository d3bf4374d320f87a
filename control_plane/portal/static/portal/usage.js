// Draws the usage page's three charts (requests, tokens, spend per UTC day) with Chart.js, from the JSON the
// server embedded with json_script; both axes are labelled so values can be read off the chart.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("usage-data").textContent);
  var charts = [
    ["chart-requests", "requests", "Requests", "#2563eb", 0],
    ["chart-tokens", "tokens", "Tokens", "#16a34a", 0],
    ["chart-cost", "cost", "Spend", "#dc2626", 6],
  ];
  charts.forEach(function (c) {
    var canvas = document.getElementById(c[0]);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: c[2], data: data[c[1]], backgroundColor: c[3] }] },
      options: {
        animation: false,
        responsive: true,
        plugins: { legend: { display: false } },
        scales: {
          x: { title: { display: true, text: "Day (UTC)" } },
          y: {
            beginAtZero: true,
            title: { display: true, text: c[2] },
            ticks: { precision: c[4] === 0 ? 0 : undefined },
          },
        },
      },
    });
    canvas.dataset.drawn = "true";
  });
})();
