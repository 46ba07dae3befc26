// Sorting and filtering for the leaderboard tables. The tables read without this script.
"use strict";

function sortValue(row, column, numeric) {
  const cell = row.cells[column];
  const raw = cell && cell.dataset.sort;
  if (raw === undefined) return null;
  return numeric ? Number(raw) : raw;
}

function sortBy(table, column, numeric, descending) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    const x = sortValue(a, column, numeric), y = sortValue(b, column, numeric);
    if (x === null || y === null) {  // empty cells last, whichever the direction
      return x === null && y === null ? a.dataset.index - b.dataset.index : (x === null ? 1 : -1);
    }
    const order = numeric ? x - y : String(x).localeCompare(String(y));
    return (descending ? -order : order) || a.dataset.index - b.dataset.index;
  });
  rows.forEach((row) => body.appendChild(row));
}

function makeSortable(table) {
  const headers = Array.from(table.tHead.rows[0].cells);
  headers.forEach((th, column) => {
    const type = th.dataset.type;
    if (type !== "number" && type !== "text") return;
    const button = document.createElement("button");
    button.type = "button";
    while (th.firstChild) button.appendChild(th.firstChild);
    th.appendChild(button);
    button.addEventListener("click", () => {
      const descending = th.getAttribute("aria-sort") === "ascending";
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      sortBy(table, column, type === "number", descending);
    });
  });
}

function makeFilterable(form, table) {
  const selects = Array.from(form.querySelectorAll("select[data-filter]"));
  const shown = form.querySelector("output");
  const apply = () => {
    let count = 0;
    const rows = Array.from(table.tBodies[0].rows);
    rows.forEach((row) => {
      const keep = selects.every((s) => s.value === "" || row.dataset[s.dataset.filter] === s.value);
      row.hidden = !keep;
      if (keep) count += 1;
    });
    if (shown) shown.textContent = count + " of " + rows.length + " rows shown";
  };
  selects.forEach((s) => s.addEventListener("change", apply));
  form.hidden = false;
  apply();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table[data-sortable]").forEach((table) => {
    makeSortable(table);
    const form = document.querySelector("form.filters");
    if (form) makeFilterable(form, table);
  });
});
