/* A form with `data-confirm` asks before it is sent (revoking or rotating a key, deleting a conversation): each
   undoes something at once, with no way back, and a single misplaced click was enough. Without JavaScript the form
   is sent as before. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
}());
