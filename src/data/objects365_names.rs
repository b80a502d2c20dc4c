//! The 365 Objects365 class names in Ultralytics' spelling, by contiguous class index (category id - 1).
//!
//! Copied from ultralytics/ultralytics `ultralytics/cfg/datasets/Objects365.yaml` @ 678cb51b06dcdcfdb203dda0c3e155ec368ead39
//! (= ultralytics/yolov5 `data/Objects365.yaml` with 98 "Dinning Table" → "Dining Table" and 313 "Meat ball" →
//! "Meatball"). They differ from the official JSON spellings at 16 indices, listed in [`OFFICIAL_DIFFERENCES`].
//! Note: ../shared/datasets/objects365/objects365_v2_categories.json puts these two fixes one index too early
//! (97, 312); the Ultralytics yaml itself has them at 98 and 313.

/// Ultralytics' names, index = class = category id - 1.
pub const ULTRALYTICS_NAMES: [&str; 365] = [
    "Person",                          // 0
    "Sneakers",                        // 1
    "Chair",                           // 2
    "Other Shoes",                     // 3
    "Hat",                             // 4
    "Car",                             // 5
    "Lamp",                            // 6
    "Glasses",                         // 7
    "Bottle",                          // 8
    "Desk",                            // 9
    "Cup",                             // 10
    "Street Lights",                   // 11
    "Cabinet/shelf",                   // 12
    "Handbag/Satchel",                 // 13
    "Bracelet",                        // 14
    "Plate",                           // 15
    "Picture/Frame",                   // 16
    "Helmet",                          // 17
    "Book",                            // 18
    "Gloves",                          // 19
    "Storage box",                     // 20
    "Boat",                            // 21
    "Leather Shoes",                   // 22
    "Flower",                          // 23
    "Bench",                           // 24
    "Potted Plant",                    // 25
    "Bowl/Basin",                      // 26
    "Flag",                            // 27
    "Pillow",                          // 28
    "Boots",                           // 29
    "Vase",                            // 30
    "Microphone",                      // 31
    "Necklace",                        // 32
    "Ring",                            // 33
    "SUV",                             // 34
    "Wine Glass",                      // 35
    "Belt",                            // 36
    "Monitor/TV",                      // 37
    "Backpack",                        // 38
    "Umbrella",                        // 39
    "Traffic Light",                   // 40
    "Speaker",                         // 41
    "Watch",                           // 42
    "Tie",                             // 43
    "Trash bin Can",                   // 44
    "Slippers",                        // 45
    "Bicycle",                         // 46
    "Stool",                           // 47
    "Barrel/bucket",                   // 48
    "Van",                             // 49
    "Couch",                           // 50
    "Sandals",                         // 51
    "Basket",                          // 52
    "Drum",                            // 53
    "Pen/Pencil",                      // 54
    "Bus",                             // 55
    "Wild Bird",                       // 56
    "High Heels",                      // 57
    "Motorcycle",                      // 58
    "Guitar",                          // 59
    "Carpet",                          // 60
    "Cell Phone",                      // 61
    "Bread",                           // 62
    "Camera",                          // 63
    "Canned",                          // 64
    "Truck",                           // 65
    "Traffic cone",                    // 66
    "Cymbal",                          // 67
    "Lifesaver",                       // 68
    "Towel",                           // 69
    "Stuffed Toy",                     // 70
    "Candle",                          // 71
    "Sailboat",                        // 72
    "Laptop",                          // 73
    "Awning",                          // 74
    "Bed",                             // 75
    "Faucet",                          // 76
    "Tent",                            // 77
    "Horse",                           // 78
    "Mirror",                          // 79
    "Power outlet",                    // 80
    "Sink",                            // 81
    "Apple",                           // 82
    "Air Conditioner",                 // 83
    "Knife",                           // 84
    "Hockey Stick",                    // 85
    "Paddle",                          // 86
    "Pickup Truck",                    // 87
    "Fork",                            // 88
    "Traffic Sign",                    // 89
    "Balloon",                         // 90
    "Tripod",                          // 91
    "Dog",                             // 92
    "Spoon",                           // 93
    "Clock",                           // 94
    "Pot",                             // 95
    "Cow",                             // 96
    "Cake",                            // 97
    "Dining Table",                    // 98
    "Sheep",                           // 99
    "Hanger",                          // 100
    "Blackboard/Whiteboard",           // 101
    "Napkin",                          // 102
    "Other Fish",                      // 103
    "Orange/Tangerine",                // 104
    "Toiletry",                        // 105
    "Keyboard",                        // 106
    "Tomato",                          // 107
    "Lantern",                         // 108
    "Machinery Vehicle",               // 109
    "Fan",                             // 110
    "Green Vegetables",                // 111
    "Banana",                          // 112
    "Baseball Glove",                  // 113
    "Airplane",                        // 114
    "Mouse",                           // 115
    "Train",                           // 116
    "Pumpkin",                         // 117
    "Soccer",                          // 118
    "Skiboard",                        // 119
    "Luggage",                         // 120
    "Nightstand",                      // 121
    "Tea pot",                         // 122
    "Telephone",                       // 123
    "Trolley",                         // 124
    "Head Phone",                      // 125
    "Sports Car",                      // 126
    "Stop Sign",                       // 127
    "Dessert",                         // 128
    "Scooter",                         // 129
    "Stroller",                        // 130
    "Crane",                           // 131
    "Remote",                          // 132
    "Refrigerator",                    // 133
    "Oven",                            // 134
    "Lemon",                           // 135
    "Duck",                            // 136
    "Baseball Bat",                    // 137
    "Surveillance Camera",             // 138
    "Cat",                             // 139
    "Jug",                             // 140
    "Broccoli",                        // 141
    "Piano",                           // 142
    "Pizza",                           // 143
    "Elephant",                        // 144
    "Skateboard",                      // 145
    "Surfboard",                       // 146
    "Gun",                             // 147
    "Skating and Skiing shoes",        // 148
    "Gas stove",                       // 149
    "Donut",                           // 150
    "Bow Tie",                         // 151
    "Carrot",                          // 152
    "Toilet",                          // 153
    "Kite",                            // 154
    "Strawberry",                      // 155
    "Other Balls",                     // 156
    "Shovel",                          // 157
    "Pepper",                          // 158
    "Computer Box",                    // 159
    "Toilet Paper",                    // 160
    "Cleaning Products",               // 161
    "Chopsticks",                      // 162
    "Microwave",                       // 163
    "Pigeon",                          // 164
    "Baseball",                        // 165
    "Cutting/chopping Board",          // 166
    "Coffee Table",                    // 167
    "Side Table",                      // 168
    "Scissors",                        // 169
    "Marker",                          // 170
    "Pie",                             // 171
    "Ladder",                          // 172
    "Snowboard",                       // 173
    "Cookies",                         // 174
    "Radiator",                        // 175
    "Fire Hydrant",                    // 176
    "Basketball",                      // 177
    "Zebra",                           // 178
    "Grape",                           // 179
    "Giraffe",                         // 180
    "Potato",                          // 181
    "Sausage",                         // 182
    "Tricycle",                        // 183
    "Violin",                          // 184
    "Egg",                             // 185
    "Fire Extinguisher",               // 186
    "Candy",                           // 187
    "Fire Truck",                      // 188
    "Billiards",                       // 189
    "Converter",                       // 190
    "Bathtub",                         // 191
    "Wheelchair",                      // 192
    "Golf Club",                       // 193
    "Briefcase",                       // 194
    "Cucumber",                        // 195
    "Cigar/Cigarette",                 // 196
    "Paint Brush",                     // 197
    "Pear",                            // 198
    "Heavy Truck",                     // 199
    "Hamburger",                       // 200
    "Extractor",                       // 201
    "Extension Cord",                  // 202
    "Tong",                            // 203
    "Tennis Racket",                   // 204
    "Folder",                          // 205
    "American Football",               // 206
    "earphone",                        // 207
    "Mask",                            // 208
    "Kettle",                          // 209
    "Tennis",                          // 210
    "Ship",                            // 211
    "Swing",                           // 212
    "Coffee Machine",                  // 213
    "Slide",                           // 214
    "Carriage",                        // 215
    "Onion",                           // 216
    "Green beans",                     // 217
    "Projector",                       // 218
    "Frisbee",                         // 219
    "Washing Machine/Drying Machine",  // 220
    "Chicken",                         // 221
    "Printer",                         // 222
    "Watermelon",                      // 223
    "Saxophone",                       // 224
    "Tissue",                          // 225
    "Toothbrush",                      // 226
    "Ice cream",                       // 227
    "Hot-air balloon",                 // 228
    "Cello",                           // 229
    "French Fries",                    // 230
    "Scale",                           // 231
    "Trophy",                          // 232
    "Cabbage",                         // 233
    "Hot dog",                         // 234
    "Blender",                         // 235
    "Peach",                           // 236
    "Rice",                            // 237
    "Wallet/Purse",                    // 238
    "Volleyball",                      // 239
    "Deer",                            // 240
    "Goose",                           // 241
    "Tape",                            // 242
    "Tablet",                          // 243
    "Cosmetics",                       // 244
    "Trumpet",                         // 245
    "Pineapple",                       // 246
    "Golf Ball",                       // 247
    "Ambulance",                       // 248
    "Parking meter",                   // 249
    "Mango",                           // 250
    "Key",                             // 251
    "Hurdle",                          // 252
    "Fishing Rod",                     // 253
    "Medal",                           // 254
    "Flute",                           // 255
    "Brush",                           // 256
    "Penguin",                         // 257
    "Megaphone",                       // 258
    "Corn",                            // 259
    "Lettuce",                         // 260
    "Garlic",                          // 261
    "Swan",                            // 262
    "Helicopter",                      // 263
    "Green Onion",                     // 264
    "Sandwich",                        // 265
    "Nuts",                            // 266
    "Speed Limit Sign",                // 267
    "Induction Cooker",                // 268
    "Broom",                           // 269
    "Trombone",                        // 270
    "Plum",                            // 271
    "Rickshaw",                        // 272
    "Goldfish",                        // 273
    "Kiwi fruit",                      // 274
    "Router/modem",                    // 275
    "Poker Card",                      // 276
    "Toaster",                         // 277
    "Shrimp",                          // 278
    "Sushi",                           // 279
    "Cheese",                          // 280
    "Notepaper",                       // 281
    "Cherry",                          // 282
    "Pliers",                          // 283
    "CD",                              // 284
    "Pasta",                           // 285
    "Hammer",                          // 286
    "Cue",                             // 287
    "Avocado",                         // 288
    "Hamimelon",                       // 289
    "Flask",                           // 290
    "Mushroom",                        // 291
    "Screwdriver",                     // 292
    "Soap",                            // 293
    "Recorder",                        // 294
    "Bear",                            // 295
    "Eggplant",                        // 296
    "Board Eraser",                    // 297
    "Coconut",                         // 298
    "Tape Measure/Ruler",              // 299
    "Pig",                             // 300
    "Showerhead",                      // 301
    "Globe",                           // 302
    "Chips",                           // 303
    "Steak",                           // 304
    "Crosswalk Sign",                  // 305
    "Stapler",                         // 306
    "Camel",                           // 307
    "Formula 1",                       // 308
    "Pomegranate",                     // 309
    "Dishwasher",                      // 310
    "Crab",                            // 311
    "Hoverboard",                      // 312
    "Meatball",                        // 313
    "Rice Cooker",                     // 314
    "Tuba",                            // 315
    "Calculator",                      // 316
    "Papaya",                          // 317
    "Antelope",                        // 318
    "Parrot",                          // 319
    "Seal",                            // 320
    "Butterfly",                       // 321
    "Dumbbell",                        // 322
    "Donkey",                          // 323
    "Lion",                            // 324
    "Urinal",                          // 325
    "Dolphin",                         // 326
    "Electric Drill",                  // 327
    "Hair Dryer",                      // 328
    "Egg tart",                        // 329
    "Jellyfish",                       // 330
    "Treadmill",                       // 331
    "Lighter",                         // 332
    "Grapefruit",                      // 333
    "Game board",                      // 334
    "Mop",                             // 335
    "Radish",                          // 336
    "Baozi",                           // 337
    "Target",                          // 338
    "French",                          // 339
    "Spring Rolls",                    // 340
    "Monkey",                          // 341
    "Rabbit",                          // 342
    "Pencil Case",                     // 343
    "Yak",                             // 344
    "Red Cabbage",                     // 345
    "Binoculars",                      // 346
    "Asparagus",                       // 347
    "Barbell",                         // 348
    "Scallop",                         // 349
    "Noddles",                         // 350
    "Comb",                            // 351
    "Dumpling",                        // 352
    "Oyster",                          // 353
    "Table Tennis paddle",             // 354
    "Cosmetics Brush/Eyeliner Pencil", // 355
    "Chainsaw",                        // 356
    "Eraser",                          // 357
    "Lobster",                         // 358
    "Durian",                          // 359
    "Okra",                            // 360
    "Lipstick",                        // 361
    "Cosmetics Mirror",                // 362
    "Curling",                         // 363
    "Table Tennis",                    // 364
];

/// (class index, official JSON spelling) where it differs from [`ULTRALYTICS_NAMES`]: typos such as
/// "Moniter/TV", trailing spaces, and the two Ultralytics-only renames.
pub const OFFICIAL_DIFFERENCES: [(usize, &str); 16] = [
    (37, "Moniter/TV"),
    (52, "Bakset"),
    (90, "Ballon"),
    (98, "Dinning Table"),
    (189, "Billards"),
    (196, "Cigar/Cigarette "),
    (202, "Extention Cord"),
    (228, "Hotair ballon"),
    (291, "Mushroon"),
    (299, "Tape Measur/ Ruler"),
    (307, "Campel"),
    (308, "Formula 1 "),
    (313, "Meat ball"),
    (321, "Buttefly"),
    (354, "Table Teniis paddle"),
    (364, "Table Tennis "),
];
