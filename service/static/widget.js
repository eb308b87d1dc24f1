/*
 * Related stories for the article on this page, from the related-stories service.
 *
 * One tag, placed where the list should appear:
 *   <script src="https://SERVICE/widget.js" async
 *           data-url="https://news.example/2024/05/article"   (default: the page's canonical URL)
 *           data-k="5"                                       (how many, default 5)
 *           data-title="Related stories"                     (the heading)
 *           data-api-key="rk_..."                            (when the service requires keys)
 *           data-service="https://SERVICE"></script>         (default: where the script came from)
 *
 * The list is built with DOM text nodes only (titles are never parsed as HTML) and links and
 * images only for http(s) URLs. Styles are in a zero-specificity layer (:where), so any rule
 * of the page overrides them; the classes are rs-widget, rs-heading, rs-list, rs-item,
 * rs-link, rs-image, rs-headline, rs-meta. When the service fails, nothing is shown and one
 * line is logged to the console.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var data = script.dataset;
  var base = new URL(data.service || script.src, document.baseURI).origin;
  var canonical = document.querySelector('link[rel="canonical"]');
  var article = data.url || (canonical && canonical.href) || location.href;
  var k = Math.max(1, Math.min(parseInt(data.k || "5", 10) || 5, 20));

  function web(url) {
    try {
      var parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text) { node.textContent = text; }
    return node;
  }

  function addStyles() {
    if (document.getElementById("rs-widget-styles")) { return; }
    var style = el("style");
    style.id = "rs-widget-styles";
    style.textContent =
      ":where(.rs-widget){margin:1.5em 0;font:inherit;color:inherit}" +
      ":where(.rs-heading){font-size:1.1em;margin:0 0 .5em}" +
      ":where(.rs-list){list-style:none;margin:0;padding:0;display:grid;gap:.75em}" +
      ":where(.rs-item){display:flex;gap:.75em;align-items:flex-start;min-width:0}" +
      ":where(.rs-image){flex:0 0 auto;width:96px;height:64px;object-fit:cover;border-radius:4px}" +
      ":where(.rs-text){min-width:0;overflow-wrap:anywhere}" +
      ":where(.rs-link){color:inherit;font-weight:600;text-decoration:none}" +
      ":where(.rs-link:hover,.rs-link:focus){text-decoration:underline}" +
      ":where(.rs-meta){display:block;font-size:.85em;opacity:.75;margin-top:.2em}";
    document.head.appendChild(style);
  }

  function render(answer) {
    var stories = (answer.related || []).filter(function (s) { return web(s.url); });
    if (!stories.length) { return; }
    addStyles();
    var box = el("aside", "rs-widget");
    var heading = el("h2", "rs-heading", data.title || "Related stories");
    heading.id = "rs-heading-" + Math.random().toString(36).slice(2);
    box.setAttribute("aria-labelledby", heading.id);
    box.appendChild(heading);
    var list = el("ul", "rs-list");
    stories.forEach(function (story) {
      var item = el("li", "rs-item");
      var image = web(story.image);
      if (image) {
        var img = el("img", "rs-image");
        img.src = image;
        img.alt = "";  // decorative: the headline beside it says what the story is
        img.loading = "lazy";
        img.width = 96;
        img.height = 64;
        img.onerror = function () { img.remove(); };
        item.appendChild(img);
      }
      var text = el("div", "rs-text");
      var link = el("a", "rs-link", story.title);
      link.href = web(story.url);
      text.appendChild(link);
      var meta = el("span", "rs-meta");
      if (story.provider) { meta.appendChild(document.createTextNode(story.provider)); }
      if (story.publishedDateTime) {
        var when = new Date(story.publishedDateTime);
        if (!isNaN(when)) {
          var time = el("time", null, when.toLocaleDateString(
            document.documentElement.lang || undefined,
            { year: "numeric", month: "short", day: "numeric" }));
          time.dateTime = story.publishedDateTime;
          if (meta.firstChild) { meta.appendChild(document.createTextNode(" \u00b7 ")); }
          meta.appendChild(time);
        }
      }
      text.appendChild(meta);
      item.appendChild(text);
      list.appendChild(item);
    });
    box.appendChild(list);
    script.parentNode.insertBefore(box, script.nextSibling);
  }

  var headers = data.apiKey ? { "X-API-Key": data.apiKey } : {};
  fetch(base + "/v1/related?k=" + k + "&url=" + encodeURIComponent(article),
        { headers: headers, credentials: "omit" })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    })
    .then(render)
    .catch(function (error) {
      console.warn("related-stories: no list for " + article + " (" + error.message + ")");
    });
})();
