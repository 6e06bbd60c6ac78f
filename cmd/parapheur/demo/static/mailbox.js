// The mailbox list reloads itself when a new mail arrives: it asks the
// JSON twin for the newest mail every two seconds. Without JavaScript the
// list works the same, refreshed by hand.
(function () {
  var table = document.getElementById("mails");
  if (!table) return;
  var filter = table.dataset.filter;
  var url = "/demo/api/messages" + (filter ? "?to=" + encodeURIComponent(filter) : "");
  setInterval(function () {
    fetch(url).then(function (r) { return r.json(); }).then(function (mails) {
      var newest = mails.length ? mails[0].id : "";
      if (newest !== table.dataset.newest) location.reload();
    }).catch(function () {});
  }, 2000);
})();
