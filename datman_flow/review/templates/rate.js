// Rating pictures: clicks become points in the PNG's own pixels (scaled by
// naturalWidth / clientWidth), drawn as marks that a click removes; a form saves with fetch
// (JSON back) and falls back to a plain POST without scripts. Keys on the focused picture:
// 1/p PASS, 2/u UNSURE, 3/f FAIL, then save and focus the next picture.
(function () {
  "use strict";
  var MAX_POINTS = 50;
  var KEYS = { "1": 0, "p": 0, "2": 1, "u": 1, "3": 2, "f": 2 };
  var NAMES = ["PASS", "UNSURE", "FAIL"];
  var pictures = Array.prototype.slice.call(document.querySelectorAll("section.picture"));

  function field(section, name) { return section.querySelector("form.rate [name=" + name + "]"); }
  function pointsOf(section) {
    try { return JSON.parse(field(section, "points").value || "[]"); } catch (e) { return []; }
  }
  function sizeOf(section, img) {
    return [Number(section.dataset.width) || img.naturalWidth, Number(section.dataset.height) || img.naturalHeight];
  }
  function say(section, text) { section.querySelector(".status-line").textContent = text; }

  function draw(section) {
    var frame = section.querySelector(".frame");
    var points = pointsOf(section);
    section.querySelector(".clicks").textContent = points.length + " click(s)";
    if (!frame) { return; }
    var img = frame.querySelector("img");
    var size = sizeOf(section, img);
    Array.prototype.forEach.call(frame.querySelectorAll(".marker"), function (m) { m.remove(); });
    if (!size[0] || !size[1]) { return; }
    points.forEach(function (p, i) {
      var mark = document.createElement("button");
      mark.type = "button";
      mark.className = "marker";
      mark.title = "click (" + Math.round(p.x) + ", " + Math.round(p.y) + "): click to remove";
      mark.style.left = (100 * p.x / size[0]) + "%";
      mark.style.top = (100 * p.y / size[1]) + "%";
      mark.addEventListener("click", function (event) {
        event.stopPropagation();
        var now = pointsOf(section);
        now.splice(i, 1);
        setPoints(section, now);  // redraws the marks: the one clicked (which had the focus) is gone
        section.focus({ preventScroll: true });  // so the rating keys still reach this picture
      });
      frame.appendChild(mark);
    });
  }
  function setPoints(section, points) {
    field(section, "points").value = JSON.stringify(points);
    draw(section);
  }

  function save(section) {
    var form = section.querySelector("form.rate");
    if (!form.querySelector("[name=rating]:checked")) { say(section, "choose PASS, UNSURE or FAIL first"); return Promise.resolve(false); }
    say(section, "saving...");
    return fetch(form.action, {
      method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": field(section, "csrf_token").value }
    }).then(function (response) {
      return response.json().catch(function () { return { error: response.status + " " + response.statusText }; })
        .then(function (data) {
          if (!response.ok) { say(section, "NOT saved: " + (data.error || response.status)); return false; }
          say(section, "saved: " + data.rating_name + " with " + data.clicks + " click(s), just now");
          return true;
        });
    }).catch(function (error) { say(section, "NOT saved: " + error); return false; });
  }
  function focusNext(section) {
    var next = pictures[pictures.indexOf(section) + 1];
    if (next) { next.focus(); next.scrollIntoView({ block: "center" }); }
  }

  pictures.forEach(function (section) {
    var img = section.querySelector(".frame img");
    if (img) {
      img.addEventListener("click", function (event) {
        var points = pointsOf(section);
        if (points.length >= MAX_POINTS) { say(section, "at most " + MAX_POINTS + " clicks per rating"); return; }
        if (!img.clientWidth || !img.naturalWidth) { return; }
        var x = event.offsetX * img.naturalWidth / img.clientWidth;
        var y = event.offsetY * img.naturalHeight / img.clientHeight;
        x = Math.min(Math.max(x, 0), img.naturalWidth);
        y = Math.min(Math.max(y, 0), img.naturalHeight);
        points.push({ x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10 });
        setPoints(section, points);
        section.focus({ preventScroll: true });
      });
      if (img.complete) { draw(section); } else { img.addEventListener("load", function () { draw(section); }); }
    }
    section.querySelector(".clear-points").addEventListener("click", function () { setPoints(section, []); });
    section.querySelector("form.rate").addEventListener("submit", function (event) {
      event.preventDefault();
      save(section);
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var target = event.target;
    if (target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
                   (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"))) { return; }
    var section = target && target.closest ? target.closest("section.picture") : null;
    var value = KEYS[event.key.toLowerCase()];
    if (!section || value === undefined) { return; }
    event.preventDefault();
    section.querySelector("form.rate [name=rating][value='" + value + "']").checked = true;
    say(section, NAMES[value] + "...");
    save(section).then(function (ok) { if (ok) { focusNext(section); } });
  });
}());
