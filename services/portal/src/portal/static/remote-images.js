// Remote images in mail stay unloaded (loading them tells the sender the message was read) until an
// agent asks: the button of a message copies each image's data-remote-src into its src.
document.addEventListener("click", function (event) {
  var button = event.target.closest(".js-remote-images");
  if (!button) return;
  var message = button.closest("article");
  message.querySelectorAll("img[data-remote-src]").forEach(function (img) {
    var url = img.getAttribute("data-remote-src");
    if (/^https?:\/\//i.test(url)) img.setAttribute("src", url);
  });
  button.remove();
});
