/* Service worker of one member's card page (scope: /m/<token>). The page and its files come from Cache Storage at
   once and are refreshed in the background, so a weak or absent signal never delays the card; card.json always
   goes to the network (the page keeps the last answer itself). */
"use strict";

var VERSION = "2";
var PAGE = new URL(self.registration.scope).pathname.replace(/\/+$/, "");
var CACHE = "member-card-" + VERSION + ":" + PAGE;
var FILES = [PAGE, PAGE + "/manifest.webmanifest", "/static/member/card.css", "/static/member/card.js",
             "/static/member/live.css", "/static/member/live.js", "/static/member/vendor/uqr.mjs",
             "/static/member/icon-192.png", "/static/member/icon-512.png"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.addAll(FILES); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf(":" + PAGE) !== -1 && name !== CACHE;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  var key = url.pathname.replace(/\/+$/, "");
  if (FILES.indexOf(key) === -1) { return; }
  event.respondWith(caches.open(CACHE).then(function (cache) {
    var fresh = fetch(request).then(function (response) {
      if (response.ok) {
        cache.put(key, response.clone());
      } else if (response.status === 404 && key === PAGE) {
        cache.delete(key);
      }
      return response;
    });
    return cache.match(key).then(function (cached) {
      if (cached) {
        event.waitUntil(fresh.catch(function () { return null; }));
        return cached;
      }
      return fresh;
    });
  }));
});
