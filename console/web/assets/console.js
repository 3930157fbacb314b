// netward console: progressive enhancement only. Every feature here has a
// working no-JavaScript path (links, GET forms, plain POST forms); this file
// makes them faster and friendlier. CSP-safe: no eval, no inline handlers,
// no innerHTML — content is moved with DOM APIs only.
(function () {
  'use strict';
  var doc = document;
  doc.documentElement.classList.add('js');

  function live(msg) {
    var el = doc.getElementById('live');
    if (!el) return;
    el.textContent = '';
    window.setTimeout(function () { el.textContent = msg; }, 30);
  }

  function init(root) {
    root.querySelectorAll('[data-copy], [data-select-all]').forEach(function (el) { el.hidden = false; });
  }

  // ---- Tables: client-side sort and filter --------------------------------
  function cellValue(row, idx) {
    var cell = row.cells[idx];
    if (!cell) return '';
    return cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent.trim();
  }

  function sortTable(table, th) {
    var headRow = th.parentNode;
    var idx = Array.prototype.indexOf.call(headRow.cells, th);
    var desc = th.getAttribute('aria-sort') === 'ascending';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.every(function (r) { var v = cellValue(r, idx); return v === '' || !isNaN(Number(v)); });
    rows.sort(function (a, b) {
      var x = cellValue(a, idx), y = cellValue(b, idx), c;
      if (numeric) { c = (Number(x) || 0) - (Number(y) || 0); } else { c = x.localeCompare(y, undefined, { sensitivity: 'base', numeric: true }); }
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(headRow.cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    var link = th.querySelector('a.sort');
    if (link) {
      var url = new URL(link.href, location.href);
      url.searchParams.set('dir', desc ? 'desc' : 'asc');
      history.replaceState(history.state, '', url.pathname + url.search + location.hash);
    }
    live('Sorted by ' + th.textContent.trim() + ', ' + (desc ? 'descending' : 'ascending'));
  }

  function filterTable(input) {
    var table = doc.getElementById(input.getAttribute('data-filter'));
    if (!table) return;
    var q = input.value.trim().toLowerCase();
    var rows = table.tBodies[0].rows, shown = 0;
    Array.prototype.forEach.call(rows, function (r) {
      var hit = q === '' || r.textContent.toLowerCase().indexOf(q) !== -1;
      r.hidden = !hit;
      if (hit) shown++;
    });
    var count = doc.getElementById(table.id + '-count');
    if (count) count.textContent = q === '' ? rows.length + ' rows' : shown + ' of ' + rows.length + ' rows';
    var none = doc.getElementById(table.id + '-none');
    if (none) none.hidden = shown !== 0;
  }

  // ---- Drawer: a real URL, loaded in place --------------------------------
  var opener = null;

  function closeDrawer(toHref) {
    doc.querySelectorAll('#drawer, .drawer-scrim').forEach(function (el) { el.remove(); });
    doc.body.classList.remove('drawer-open');
    if (toHref) history.pushState({ drawer: false }, '', toHref);
    if (opener && doc.contains(opener)) opener.focus();
    opener = null;
  }

  function showDrawer(html) {
    var parsed = new DOMParser().parseFromString(html, 'text/html');
    var drawer = parsed.getElementById('drawer');
    if (!drawer) return false;
    var scrim = parsed.querySelector('.drawer-scrim');
    doc.querySelectorAll('#drawer, .drawer-scrim').forEach(function (el) { el.remove(); });
    var anchor = doc.querySelector('.footer');
    if (scrim) doc.body.insertBefore(doc.importNode(scrim, true), anchor);
    var node = doc.importNode(drawer, true);
    node.classList.add('opening');
    doc.body.insertBefore(node, anchor);
    doc.body.classList.add('drawer-open');
    init(node);
    node.focus();
    return true;
  }

  function openDrawer(href, push) {
    // X-Netward-Drawer: the console builds the drawer alone (web.DrawerOnly).
    return fetch(href, { credentials: 'same-origin', headers: { 'Accept': 'text/html', 'X-Netward-Drawer': '1' } })
      .then(function (res) { if (!res.ok) throw new Error(res.status); return res.text(); })
      .then(function (html) {
        if (!showDrawer(html)) throw new Error('no drawer');
        if (push) history.pushState({ drawer: true }, '', href);
      })
      .catch(function () { location.href = href; });
  }

  window.addEventListener('popstate', function (e) {
    var open = !!doc.getElementById('drawer');
    if (e.state && e.state.drawer && !open) { openDrawer(location.href, false); }
    else if (open && !(e.state && e.state.drawer)) { closeDrawer(null); }
  });

  // ---- Confirm dialogs ----------------------------------------------------
  var dialog = null;

  function confirmDialog() {
    if (dialog) return dialog;
    dialog = doc.createElement('dialog');
    dialog.className = 'confirm';
    dialog.setAttribute('aria-labelledby', 'confirm-title');
    dialog.setAttribute('aria-describedby', 'confirm-text');
    var h = doc.createElement('h2'); h.id = 'confirm-title'; h.textContent = 'Please confirm';
    var p = doc.createElement('p'); p.id = 'confirm-text';
    var form = doc.createElement('form'); form.method = 'dialog'; form.className = 'form-actions';
    var cancel = doc.createElement('button'); cancel.className = 'btn'; cancel.value = 'cancel'; cancel.textContent = 'Cancel';
    var ok = doc.createElement('button'); ok.className = 'btn btn-primary'; ok.value = 'ok'; ok.textContent = 'Confirm';
    form.append(cancel, ok);
    dialog.append(h, p, form);
    doc.body.appendChild(dialog);
    return dialog;
  }

  doc.addEventListener('submit', function (e) {
    var form = e.target, btn = e.submitter;
    var msg = (btn && btn.getAttribute('data-confirm')) || form.getAttribute('data-confirm');
    if (!msg || form.dataset.confirmed === '1' || form.method === 'dialog') return;
    if (typeof HTMLDialogElement !== 'function') { if (!window.confirm(msg)) e.preventDefault(); return; }
    e.preventDefault();
    var d = confirmDialog();
    d.querySelector('#confirm-text').textContent = msg;
    var ok = d.querySelector('button[value="ok"]');
    var danger = (btn && btn.classList.contains('btn-danger')) || /unsanction|revoke|delete|block/i.test(msg);
    ok.className = danger ? 'btn btn-primary btn-confirm-danger' : 'btn btn-primary';
    ok.textContent = (btn && btn.textContent.trim()) || 'Confirm';
    d.returnValue = '';
    d.onclose = function () {
      if (d.returnValue !== 'ok') { if (btn) btn.focus(); return; }
      form.dataset.confirmed = '1';
      if (form.requestSubmit) { form.requestSubmit(btn || undefined); } else { form.submit(); }
      delete form.dataset.confirmed;
    };
    d.showModal();
    d.querySelector('button[value="cancel"]').focus();
  }, true);

  // ---- One click listener for links and buttons ---------------------------
  doc.addEventListener('click', function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    var t = e.target.closest('a.sort, a[data-drawer], [data-drawer-close], [data-copy]');
    if (!t) return;
    if (t.matches('a.sort')) {
      var table = t.closest('table');
      if (table && table.hasAttribute('data-client-sort')) { e.preventDefault(); sortTable(table, t.closest('th')); }
    } else if (t.matches('a[data-drawer]')) {
      e.preventDefault();
      opener = t;
      openDrawer(t.href, true);
    } else if (t.matches('[data-drawer-close]')) {
      e.preventDefault();
      var close = doc.querySelector('#drawer a[data-drawer-close]');
      closeDrawer(close ? close.href : null);
    } else if (t.matches('[data-copy]')) {
      copy(t);
    }
  });

  doc.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && doc.getElementById('drawer') && !doc.querySelector('dialog[open]')) {
      var close = doc.querySelector('#drawer a[data-drawer-close]');
      closeDrawer(close ? close.href : null);
    }
  });

  doc.addEventListener('input', function (e) {
    if (e.target.matches('input[data-filter]')) filterTable(e.target);
  });

  doc.addEventListener('change', function (e) {
    var t = e.target;
    if (t.matches('[data-select-all]')) {
      var table = doc.getElementById(t.getAttribute('data-select-all'));
      if (!table) return;
      table.querySelectorAll('tbody input[type="checkbox"][name="ids"]').forEach(function (c) {
        if (!c.closest('tr').hidden) c.checked = t.checked;
      });
    } else if (t.matches('tbody input[type="checkbox"][name="ids"]')) {
      var tbl = t.closest('table'), all = tbl && tbl.querySelector('[data-select-all]');
      if (!all) return;
      var boxes = tbl.querySelectorAll('tbody input[type="checkbox"][name="ids"]');
      var on = Array.prototype.filter.call(boxes, function (c) { return c.checked; }).length;
      all.checked = on === boxes.length;
      all.indeterminate = on > 0 && on < boxes.length;
    }
  });

  // Filter forms over tables that hold every row filter in place.
  doc.addEventListener('submit', function (e) {
    var input = e.target.querySelector && e.target.querySelector('input[data-filter]');
    if (!input) return;
    var table = doc.getElementById(input.getAttribute('data-filter'));
    if (table && table.hasAttribute('data-client-sort')) { e.preventDefault(); filterTable(input); }
  });

  // ---- Copy to clipboard --------------------------------------------------
  function copy(btn) {
    var src = doc.getElementById(btn.getAttribute('data-copy'));
    if (!src) return;
    var text = src.textContent;
    var done = function () {
      live('Copied to the clipboard');
      btn.classList.add('copied');
      window.setTimeout(function () { btn.classList.remove('copied'); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectCopy(src) && done(); });
    } else if (selectCopy(src)) { done(); }
  }

  function selectCopy(el) {
    var range = doc.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { return doc.execCommand('copy'); } catch (err) { return false; }
  }

  init(doc);
  var drawer = doc.getElementById('drawer');
  if (drawer) { doc.body.classList.add('drawer-open'); history.replaceState({ drawer: true }, '', location.href); }
})();
