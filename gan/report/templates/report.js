document.querySelectorAll("table.sortable th").forEach((th, i) => th.onclick = () => {
  const body = th.closest("table").tBodies[0];
  const dir = (th.dataset.dir = th.dataset.dir === "d" ? "a" : "d") === "a" ? 1 : -1;
  const rows = [...body.rows].sort((a, b) => {
    const x = a.cells[i].textContent, y = b.cells[i].textContent;
    const nx = parseFloat(x), ny = parseFloat(y);
    return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
  });
  body.append(...rows);
});
