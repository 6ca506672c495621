/* wschat support bubble. Embed with one line:
   <script src="https://YOUR-WSCHAT-HOST/widget.js" async></script>
   It adds a chat bubble; a click opens the visitor widget (/support) in an iframe.
   A site that signs its customers in adds data-token="JWT" (docs/identity.md):
   the visitor is then the same on every device. */
(function () {
  "use strict";
  if (window.__wschatWidget) return;
  window.__wschatWidget = true;
  var me = document.currentScript;
  var base = me && me.src ? new URL(me.src, location.href).origin : location.origin;
  var zh = (navigator.language || "").toLowerCase().indexOf("zh") === 0;
  function start() {
    var bubble = document.createElement("button");
    bubble.type = "button";
    bubble.setAttribute("aria-label", zh ? "联系客服" : "Chat with support");
    bubble.textContent = "💬";
    bubble.style.cssText = "position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;" +
      "border:none;background:#1f6feb;color:#fff;font-size:26px;cursor:pointer;z-index:2147483646;" +
      "box-shadow:0 4px 14px rgba(0,0,0,.25)";
    var frame = null;
    bubble.addEventListener("click", function () {
      if (!frame) {
        frame = document.createElement("iframe");
        var token = me && me.getAttribute("data-token");
        // The page the visitor writes from and its referrer go to the agent
        // (docs/customer-service.md, "Visitors").
        var q = "?page=" + encodeURIComponent(location.href) +
          "&referrer=" + encodeURIComponent(document.referrer || "");
        if (token) q += "&token=" + encodeURIComponent(token);
        frame.src = base + "/support" + q;
        frame.title = zh ? "客服" : "Support";
        frame.style.cssText = "position:fixed;right:20px;bottom:88px;width:360px;height:520px;" +
          "max-width:calc(100vw - 40px);max-height:calc(100vh - 108px);border:1px solid #d0d7de;" +
          "border-radius:12px;background:#fff;z-index:2147483647;box-shadow:0 8px 28px rgba(0,0,0,.25)";
        document.body.appendChild(frame);
        return;
      }
      frame.style.display = frame.style.display === "none" ? "" : "none";
    });
    document.body.appendChild(bubble);
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
