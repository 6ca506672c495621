/* wschat support bubble. Embed with one line:
   <script src="https://YOUR-WSCHAT-HOST/widget.js" async></script>
   It adds a chat bubble; a click opens the visitor widget (/support) in an iframe.
   A site that signs its customers in adds data-token="JWT" (docs/identity.md):
   the visitor is then the same on every device. While the widget is closed,
   replies are counted on the bubble and in the page's title. On a phone the
   widget fills the screen; its own close button closes it.

   When is the frame made? A visitor with no conversation has nothing to
   count: the frame (and its WebSocket) is made on the first click, so a
   page view costs the server nothing. Once a conversation is open, the
   frame says so and this page remembers it (localStorage, this site's
   origin, one flag); every page loaded while it is open makes the frame at
   once, hidden, so that a reply counts on the closed bubble before the
   visitor ever opens it on that page, as hosted widgets do. The frame
   counts replies after the last one the visitor saw (kept across pages),
   and clears the flag when the conversation ends. */
(function () {
  "use strict";
  if (window.__wschatWidget) return;
  window.__wschatWidget = true;
  var me = document.currentScript;
  var base = me && me.src ? new URL(me.src, location.href).origin : location.origin;
  var zh = (navigator.language || "").toLowerCase().indexOf("zh") === 0;
  // Phones (and narrow windows) get the whole screen; the screen's width
  // counts too, for pages without a mobile viewport.
  var PHONE_WIDTH = 480;
  function phone() { return Math.min(window.innerWidth, screen.width || window.innerWidth) <= PHONE_WIDTH; }
  function start() {
    var bubble = document.createElement("button");
    bubble.type = "button";
    bubble.setAttribute("aria-label", zh ? "联系客服" : "Chat with support");
    bubble.setAttribute("data-wschat", "bubble");
    // A drawn speech bubble (an emoji may be missing from the fonts).
    var NS = "http://www.w3.org/2000/svg";
    var icon = document.createElementNS(NS, "svg");
    icon.setAttribute("viewBox", "0 0 24 24"); icon.setAttribute("width", "26"); icon.setAttribute("height", "26");
    icon.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(NS, "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "#fff");
    icon.appendChild(path);
    bubble.appendChild(icon);
    bubble.style.cssText = "position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;" +
      "border:none;background:#1f6feb;color:#fff;cursor:pointer;z-index:2147483646;display:flex;" +
      "align-items:center;justify-content:center;padding:0;" +
      "box-shadow:0 4px 14px rgba(0,0,0,.25)";
    var badge = document.createElement("span");
    badge.setAttribute("data-wschat", "badge");
    badge.style.cssText = "position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;padding:0 5px;" +
      "border-radius:10px;background:#cf222e;color:#fff;font:bold 12px/20px system-ui,sans-serif;display:none";
    bubble.appendChild(badge);
    var frame = null, unread = 0, title = document.title, ACTIVE = "wschat.widget.active";
    function remember(active) {
      try { if (active) localStorage.setItem(ACTIVE, "1"); else localStorage.removeItem(ACTIVE); } catch (e) { /* storage refused: lazy frame */ }
    }
    function remembered() { try { return localStorage.getItem(ACTIVE) === "1"; } catch (e) { return false; } }
    function isOpen() { return frame && frame.style.display !== "none"; }
    function showUnread() {
      badge.textContent = String(unread);
      badge.style.display = unread ? "block" : "none";
      bubble.setAttribute("aria-label", (zh ? "联系客服" : "Chat with support") +
        (unread ? (zh ? "(" + unread + " 条新消息)" : " (" + unread + " new)") : ""));
      document.title = unread ? "(" + unread + ") " + title : title;
    }
    function place() {
      if (!frame) return;
      frame.style.cssText = phone()
        ? "position:fixed;left:0;top:0;right:0;bottom:0;width:100%;height:100%;border:none;border-radius:0;" +
          "background:#fff;z-index:2147483647"
        : "position:fixed;right:20px;bottom:88px;width:360px;height:520px;" +
          "max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);border:1px solid #d0d7de;" +
          "border-radius:12px;background:#fff;z-index:2147483647;box-shadow:0 8px 28px rgba(0,0,0,.25)";
    }
    function setOpen(open) {
      frame.style.display = open ? "" : "none";
      // The frame learns whether the visitor sees it (for its count).
      if (frame.contentWindow) frame.contentWindow.postMessage({ wschat: open ? "open" : "hide" }, base);
      // On a phone the frame covers the bubble; it shows again when closed.
      bubble.style.display = open && phone() ? "none" : "";
      if (open) { unread = 0; showUnread(); }
      bubble.setAttribute("aria-expanded", String(open));
    }
    function makeFrame(open) {
      frame = document.createElement("iframe");
      var token = me && me.getAttribute("data-token");
      // The page the visitor writes from and its referrer go to the agent
      // (docs/customer-service.md, "Visitors").
      var q = "?page=" + encodeURIComponent(location.href) +
        "&referrer=" + encodeURIComponent(document.referrer || "");
      if (token) q += "&token=" + encodeURIComponent(token);
      if (!open) q += "&hidden=1";
      frame.src = base + "/support" + q;
      frame.title = zh ? "客服" : "Support";
      place();
      document.body.appendChild(frame);
      setOpen(open);
    }
    bubble.addEventListener("click", function () {
      if (!frame) { makeFrame(true); return; }
      setOpen(!isOpen());
    });
    // The frame says how many replies are unread, whether a conversation is
    // open, and when its close button was pressed; nothing else is listened
    // to, and only from that frame.
    window.addEventListener("message", function (e) {
      if (!frame || e.source !== frame.contentWindow || e.origin !== base) return;
      var what = e.data && e.data.wschat;
      if (what === "close") { setOpen(false); bubble.focus(); }
      if (what === "unread") { unread = isOpen() ? 0 : Math.max(0, Math.min(999, e.data.count | 0)); showUnread(); }
      if (what === "active") remember(!!e.data.active);
    });
    window.addEventListener("resize", function () { if (frame) { var o = isOpen(); place(); setOpen(o); } });
    document.body.appendChild(bubble);
    if (remembered()) makeFrame(false);
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
